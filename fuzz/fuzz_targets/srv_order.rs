//! Fuzz target: mailsrv::core::fuzzing::srv_order.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mailsrv::core::fuzzing::srv_order(data));
