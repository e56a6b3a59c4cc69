//! The library's version, and a test-only export that proves the panic boundary.

use std::os::raw::c_char;

use super::boundary::ffi_boundary;
#[cfg(feature = "test-hooks")]
use super::status::mailsrv_status;

/// mailsrv's version and those of its TLS and DNS engines, e.g.
/// "mailsrv 0.1.0 (rustls 0.23.46, hickory-resolver 0.26.3)". Static; never NULL.
/// Since 0.1.
#[unsafe(no_mangle)]
pub extern "C" fn mailsrv_version() -> *const c_char {
    ffi_boundary! { VERSION.as_ptr() }
}

const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(
        "mailsrv ",
        env!("CARGO_PKG_VERSION"),
        " (rustls ",
        env!("MAILSRV_RUSTLS_VERSION"),
        ", hickory-resolver ",
        env!("MAILSRV_HICKORY_VERSION"),
        ")\0"
    )
    .as_bytes(),
) {
    Ok(s) => s,
    Err(_) => c"mailsrv",
};

/// Test builds only (feature "test-hooks"): panics inside the boundary, which must turn
/// into MAILSRV_STATUS_PANIC instead of aborting the process.
#[cfg(feature = "test-hooks")]
#[unsafe(no_mangle)]
pub extern "C" fn mailsrv_test_panic() -> mailsrv_status {
    ffi_boundary! {
        let v: Vec<u8> = Vec::new();
        let i = v.len() + 3;
        if v[i] == 0 { mailsrv_status::Ok } else { mailsrv_status::InvalidArg }
    }
}
