//! Replays the committed fuzz seeds (`fuzz/corpus/<target>/*`) through the same entry points the
//! cargo-fuzz targets call, plus generated bad input (invalid UTF-8, binary garbage, 1 MB lines),
//! so CI checks on stable that none of them panics.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let data = std::fs::read(&p).expect("readable seed");
        f(&data);
        n += 1;
    }
    n
}

#[test]
fn fuzz_seeds_do_not_panic() {
    use mxguard_filter::fuzzing;
    assert!(replay("filter_config", fuzzing::config) >= 3);
    assert!(replay("filter_regex", fuzzing::regex) >= 3);
    assert!(replay("filter_date", fuzzing::date) >= 3);
}

#[test]
fn garbage_and_huge_lines_do_not_panic() {
    use mxguard_filter::fuzzing;
    let mut garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    garbage.extend(b"\n\xff\xfe(?P<\n[\n%(\n<HOST");
    fuzzing::config(&garbage);
    fuzzing::regex(&garbage);
    fuzzing::date(&garbage);
    let mut big = b"^a.*b$\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1 << 20));
    fuzzing::regex(&big);
    let mut big_date = b"{^LN-BEG}\nAug 14 11:59:59 ".to_vec();
    big_date.extend(std::iter::repeat_n(b'x', 1 << 20));
    fuzzing::date(&big_date);
}
