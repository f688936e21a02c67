//! Entry points shared by the cargo-fuzz targets in `fuzz/` and by the seed-replay test
//! (`tests/fuzz_seeds.rs`), so the code CI replays is exactly the code the fuzzer explores.
//! Each takes arbitrary bytes and must never panic; results are thrown away.

use std::path::Path;

use jiff::tz::TimeZone;

use crate::config::{ConfigSet, FilterDefinition};
use crate::date::DateDetector;
use crate::filter::{Filter, FilterOptions};
use crate::matcher::Matcher;

const NOW: i64 = 1_124_013_600;

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// INI parser, interpolation, tag substitution and compilation of a whole filter file; if it
/// compiles, a few lines go through the pipeline.
pub fn config(data: &[u8]) {
    let t = text(data);
    let Ok(set) = ConfigSet::from_text(Path::new("fuzz.conf"), &t) else {
        return;
    };
    let opts = vec![("mode".to_string(), "aggressive".to_string())];
    let Ok(def) = FilterDefinition::from_config(&set, &opts) else {
        return;
    };
    let fo = FilterOptions {
        timezone: TimeZone::UTC,
        check_all: true,
    };
    if let Ok(mut f) = Filter::compile(def, &fo) {
        for line in t.lines().take(8) {
            let _ = f.process_line(line, NOW);
        }
    }
}

/// Python regex translation, tag expansion, both engines; the first line is the regex, the
/// rest is matched against it.
pub fn regex(data: &[u8]) {
    let t = text(data);
    let (re, hay) = t.split_once('\n').unwrap_or((&t, "x"));
    if re.len() > 2048 {
        return;
    }
    let _ = crate::translate::translate(re);
    let _ = crate::literals::required(re);
    let expanded = crate::tags::expand(re, "warn");
    if let Ok(m) = Matcher::new(&expanded, false) {
        let _ = m.find(hay);
        let _ = m.may_match(hay);
    }
}

/// Date pattern compilation and date detection; the first line is the pattern.
pub fn date(data: &[u8]) {
    let t = text(data);
    let (pat, rest) = t.split_once('\n').unwrap_or(("{^LN-BEG}", &t));
    if pat.len() > 1024 {
        return;
    }
    if let Ok(mut d) = DateDetector::new(&[pat.to_string()], TimeZone::UTC) {
        for line in rest.lines().take(8) {
            let _ = d.find(line, NOW);
        }
    }
    if let Ok(mut d) = DateDetector::new(&["{^LN-BEG}".to_string()], TimeZone::UTC) {
        for line in rest.lines().take(8) {
            let _ = d.find(line, NOW);
        }
    }
}
