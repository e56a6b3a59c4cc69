//! Shared by the integration tests: the testbed's addresses (from testbed/up.sh's env file)
//! and small wrappers that call the C entry points exactly as a C client would.
#![allow(dead_code)]

pub mod dns_proxy;

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::ptr;

use mailsrv::ffi::config::*;
use mailsrv::ffi::ctx::*;
use mailsrv::ffi::status::mailsrv_status;

/// A testbed variable. The tests run under `testbed/run.sh`; without it they fail loudly
/// rather than skip, so a missing testbed is never counted as a pass.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests through `make check` or `testbed/run.sh cargo test`"
        )
    })
}

pub fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

pub fn text(p: *const c_char) -> String {
    assert!(!p.is_null(), "NULL string");
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

/// Builds a config for the testbed DNS server with its private root anchor.
pub fn testbed_config(dispatch: u32, timeout_ms: u32) -> *mut mailsrv_config {
    let mut cfg = ptr::null_mut();
    unsafe {
        assert_eq!(mailsrv_config_new(&mut cfg), mailsrv_status::Ok);
        assert_eq!(
            mailsrv_config_set_nameserver(cfg, c(&env("MAILSRV_TEST_NS")).as_ptr()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_config_set_trust_anchor_file(cfg, c(&env("MAILSRV_TEST_ANCHOR")).as_ptr()),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_config_set_dispatch(cfg, dispatch),
            mailsrv_status::Ok
        );
        assert_eq!(
            mailsrv_config_set_timeout_ms(cfg, timeout_ms),
            mailsrv_status::Ok
        );
    }
    cfg
}

/// A context on the testbed, or a panic with the library's reason.
pub fn testbed_ctx(dispatch: u32, timeout_ms: u32) -> *mut mailsrv_ctx {
    ctx_from(testbed_config(dispatch, timeout_ms))
}

/// Makes a context from `cfg` and frees the config.
pub fn ctx_from(cfg: *mut mailsrv_config) -> *mut mailsrv_ctx {
    let mut ctx = ptr::null_mut();
    let mut err = [0 as c_char; 256];
    let st = unsafe { mailsrv_ctx_new(cfg, &mut ctx, err.as_mut_ptr(), err.len()) };
    unsafe { mailsrv_config_free(cfg) };
    assert_eq!(st, mailsrv_status::Ok, "ctx_new: {}", text(err.as_ptr()));
    ctx
}

/// A mail port of the testbed (`IMAPS`, `SUBMISSION`, ...), as the SRV records carry it.
pub fn port(service: &str) -> u16 {
    env(&format!("MAILSRV_TEST_{service}_PORT"))
        .parse()
        .expect("a port number")
}
