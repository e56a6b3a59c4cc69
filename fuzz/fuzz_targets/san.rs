//! Certificate SAN / SRVName extraction and matching on arbitrary DER.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailsrv::core::fuzzing::san(data));
