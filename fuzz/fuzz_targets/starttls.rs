//! Fuzz target: mailsrv::core::fuzzing::starttls.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailsrv::core::fuzzing::starttls(data));
