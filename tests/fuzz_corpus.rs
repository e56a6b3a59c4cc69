//! Replays the committed fuzz corpora (fuzz/corpus/<target>/*) through the same entry points
//! the cargo-fuzz targets use, so every input a fuzzer ever found interesting stays a test.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        run(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
    n
}

#[test]
fn san_corpus() {
    replay("san", mailsrv::core::fuzzing::san);
}

#[test]
fn address_corpus() {
    replay("address", mailsrv::core::fuzzing::address);
}

#[test]
fn anchor_corpus() {
    replay("anchor", mailsrv::core::fuzzing::anchor);
}

#[test]
fn history_corpus() {
    replay("history", mailsrv::core::fuzzing::history);
}

#[test]
fn srv_order_corpus() {
    replay("srv_order", mailsrv::core::fuzzing::srv_order);
}

#[test]
fn starttls_corpus() {
    replay("starttls", mailsrv::core::fuzzing::starttls);
}
