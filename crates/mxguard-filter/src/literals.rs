//! Required-literal extraction for the prefilter: from a translated (`relaxed`, `regex`-crate
//! syntax) pattern, a set of literal strings one of which occurs in every match. The filter runs
//! one Aho-Corasick scan over the line and only tries the failregexes whose literals occur, so
//! the common line that can match nothing costs one scan. Sound by construction: anything it does
//! not understand (classes, case-insensitive groups, optional parts) yields no requirement.

/// Shortest literal worth a prefilter (shorter ones match too many lines).
const MIN_LEN: usize = 3;
/// Largest alternative set kept.
const MAX_SET: usize = 32;

#[derive(Debug, Clone)]
enum Node {
    Lit(char),
    /// Matches something we do not model (class, dot, `\w`, ...).
    Any,
    /// Zero-width (anchor, word boundary).
    Empty,
    /// Alternatives; `icase` groups give no literals.
    Group(Vec<Vec<Node>>),
    Repeat(Box<Node>, u32),
}

/// Literals one of which must occur in every match of `pattern`; `None` if none was found.
pub fn required(pattern: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut pos = 0;
    let alts = parse_alts(&chars, &mut pos, false, 0)?;
    let set = req_alts(&alts)?;
    let min = set.iter().map(String::len).min()?;
    (min >= MIN_LEN).then_some(set)
}

fn parse_alts(
    s: &[char],
    pos: &mut usize,
    mut icase: bool,
    depth: usize,
) -> Option<Vec<Vec<Node>>> {
    if depth > 100 {
        return None;
    }
    let mut alts = vec![Vec::new()];
    while let Some(&c) = s.get(*pos) {
        let node = match c {
            ')' => return Some(alts),
            '|' => {
                *pos += 1;
                alts.push(Vec::new());
                continue;
            }
            '\\' => {
                let n = *s.get(*pos + 1)?;
                *pos += 2;
                match n {
                    'b' | 'B' | 'A' | 'z' => Node::Empty,
                    'n' => lit('\n', icase),
                    't' => lit('\t', icase),
                    'r' => lit('\r', icase),
                    'x' => {
                        // \xHH
                        let h: String = s.get(*pos..*pos + 2)?.iter().collect();
                        *pos += 2;
                        u32::from_str_radix(&h, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .map_or(Node::Any, |ch| lit(ch, icase))
                    }
                    n if n.is_ascii_alphanumeric() => Node::Any,
                    n => lit(n, icase),
                }
            }
            '[' => {
                *pos += 1;
                if s.get(*pos) == Some(&'^') {
                    *pos += 1;
                }
                if s.get(*pos) == Some(&']') {
                    *pos += 1;
                }
                loop {
                    match s.get(*pos)? {
                        '\\' => *pos += 2,
                        ']' => {
                            *pos += 1;
                            break;
                        }
                        _ => *pos += 1,
                    }
                }
                Node::Any
            }
            '(' => {
                *pos += 1;
                let mut inner_icase = icase;
                if s.get(*pos) == Some(&'?') {
                    *pos += 1;
                    match s.get(*pos)? {
                        'P' | '<' => {
                            while *s.get(*pos)? != '>' {
                                *pos += 1;
                            }
                            *pos += 1;
                        }
                        ':' => *pos += 1,
                        _ => {
                            let mut flags = String::new();
                            while let Some(&f) = s.get(*pos) {
                                if f == ':' || f == ')' {
                                    break;
                                }
                                flags.push(f);
                                *pos += 1;
                            }
                            let on = flags.split('-').next().unwrap_or("");
                            let sets_i = on.contains('i');
                            if *s.get(*pos)? == ')' {
                                // (?i) applies to the rest of the enclosing group
                                *pos += 1;
                                if sets_i {
                                    icase = true;
                                }
                                continue;
                            }
                            *pos += 1;
                            inner_icase = inner_icase || sets_i || flags.contains('x');
                        }
                    }
                }
                let alts = parse_alts(s, pos, inner_icase, depth + 1)?;
                if s.get(*pos) != Some(&')') {
                    return None;
                }
                *pos += 1;
                Node::Group(alts)
            }
            '.' => {
                *pos += 1;
                Node::Any
            }
            '^' | '$' => {
                *pos += 1;
                Node::Empty
            }
            '*' | '+' | '?' | '{' => return None, // quantifier without target: give up
            c => {
                *pos += 1;
                lit(c, icase)
            }
        };
        let node = quantify(s, pos, node)?;
        alts.last_mut()?.push(node);
    }
    Some(alts)
}

fn lit(c: char, icase: bool) -> Node {
    if icase && c.is_alphabetic() {
        Node::Any
    } else {
        Node::Lit(c)
    }
}

fn quantify(s: &[char], pos: &mut usize, node: Node) -> Option<Node> {
    let min = match s.get(*pos) {
        Some('*') | Some('?') => {
            *pos += 1;
            0
        }
        Some('+') => {
            *pos += 1;
            1
        }
        Some('{') => {
            let mut body = String::new();
            *pos += 1;
            while let Some(&c) = s.get(*pos) {
                *pos += 1;
                if c == '}' {
                    break;
                }
                body.push(c);
            }
            body.split(',').next()?.trim().parse::<u32>().unwrap_or(0)
        }
        _ => return Some(node),
    };
    if s.get(*pos) == Some(&'?') {
        *pos += 1; // lazy
    }
    Some(Node::Repeat(Box::new(node), min))
}

/// Best requirement of one alternative (a sequence).
fn req_seq(seq: &[Node]) -> Option<Vec<String>> {
    let mut best: Option<Vec<String>> = None;
    let mut run = String::new();
    let consider = |cand: Option<Vec<String>>, best: &mut Option<Vec<String>>| {
        if let Some(c) = cand
            && better(&c, best.as_ref())
        {
            *best = Some(c);
        }
    };
    for n in seq {
        match n {
            Node::Lit(c) => {
                run.push(*c);
                continue;
            }
            Node::Empty => continue,
            Node::Group(alts) if alts.len() == 1 => {
                // a non-alternating group: its literals may continue the run only if the group is
                // a plain literal; otherwise treat it like any other node
                if let Some(l) = plain_literal(&alts[0]) {
                    run.push_str(&l);
                    continue;
                }
                consider(
                    Some(vec![std::mem::take(&mut run)]).filter(|v| !v[0].is_empty()),
                    &mut best,
                );
                consider(req_seq(&alts[0]), &mut best);
            }
            Node::Group(alts) => {
                consider(
                    Some(vec![std::mem::take(&mut run)]).filter(|v| !v[0].is_empty()),
                    &mut best,
                );
                consider(req_alts(alts), &mut best);
            }
            Node::Repeat(inner, min) => {
                consider(
                    Some(vec![std::mem::take(&mut run)]).filter(|v| !v[0].is_empty()),
                    &mut best,
                );
                if *min >= 1 {
                    consider(req_seq(std::slice::from_ref(inner)), &mut best);
                }
            }
            Node::Any => {
                consider(
                    Some(vec![std::mem::take(&mut run)]).filter(|v| !v[0].is_empty()),
                    &mut best,
                );
            }
        }
    }
    consider(Some(vec![run]).filter(|v| !v[0].is_empty()), &mut best);
    best
}

fn plain_literal(seq: &[Node]) -> Option<String> {
    let mut s = String::new();
    for n in seq {
        match n {
            Node::Lit(c) => s.push(*c),
            Node::Empty => {}
            Node::Group(a) if a.len() == 1 => s.push_str(&plain_literal(&a[0])?),
            _ => return None,
        }
    }
    Some(s)
}

fn req_alts(alts: &[Vec<Node>]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for a in alts {
        let r = req_seq(a)?;
        out.extend(r);
        if out.len() > MAX_SET {
            return None;
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

fn better(c: &[String], best: Option<&Vec<String>>) -> bool {
    let score = |v: &[String]| v.iter().map(String::len).min().unwrap_or(0);
    match best {
        None => true,
        Some(b) => {
            let (sc, sb) = (score(c), score(b));
            sc > sb || (sc == sb && c.len() < b.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_required_literals() {
        assert_eq!(
            required(r"^[^\[]*\[(?P<x>\d+)\]: SASL (?i:LOGIN|PLAIN) authentication failed:"),
            Some(vec![" authentication failed:".to_string()])
        );
        assert_eq!(
            required(r"^(?:Login aborted|Disconnected) \(x"),
            Some(vec![
                "Disconnected".to_string(),
                "Login aborted".to_string()
            ])
        );
        assert_eq!(required(r"^(?:abc)?\d+"), None);
        assert_eq!(required(r"(?i)^hostname \S+"), None);
        assert_eq!(required(r"^from [^\[]*\["), Some(vec!["from ".to_string()]));
    }

    #[test]
    fn literals_really_are_required() {
        // every string the regex matches contains one of the literals
        let pats = [
            r"^a(?:bcd|xyz)+e",
            r"foo(?:bar)?baz",
            r"(?:hello|world) there",
        ];
        let hays = [
            "abcde",
            "axyzbcde",
            "foobaz",
            "foobarbaz",
            "hello there",
            "world there",
        ];
        for p in pats {
            let lits = required(p).unwrap();
            let re = regex::Regex::new(p).unwrap();
            for h in hays {
                if re.is_match(h) {
                    assert!(
                        lits.iter().any(|l| h.contains(l.as_str())),
                        "{p} {h} {lits:?}"
                    );
                }
            }
        }
    }
}
