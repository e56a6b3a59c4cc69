//! DNSSEC trust-anchor file parsing on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailsrv::core::fuzzing::anchor(data));
