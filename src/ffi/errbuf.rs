//! The error buffer of blocking exports: always NUL-terminated, "" on success, the reason
//! on failure.

use std::os::raw::{c_char, c_int};

use super::status::mailsrv_status;
use super::strings::write_errbuf;

/// Runs a blocking export's body so that `errbuf` is always NUL-terminated: cleared first,
/// then the failure's reason (or, for argument errors caught before the core ran, the
/// status text).
pub(crate) fn with_errbuf(
    errbuf: *mut c_char,
    errlen: usize,
    body: impl FnOnce() -> mailsrv_status,
) -> mailsrv_status {
    unsafe { write_errbuf(errbuf, errlen, "") };
    let status = body();
    let empty = errbuf.is_null() || errlen == 0 || unsafe { *errbuf } == 0;
    if status != mailsrv_status::Ok && empty {
        let text =
            unsafe { std::ffi::CStr::from_ptr(super::status::mailsrv_status_str(status as c_int)) };
        unsafe { write_errbuf(errbuf, errlen, &text.to_string_lossy()) };
    }
    status
}

/// Writes the outcome of a blocking call: status back, detail text (or "") into errbuf.
pub(crate) fn finish<T>(
    r: crate::core::Result<T>,
    errbuf: *mut c_char,
    errlen: usize,
    on_ok: impl FnOnce(T),
) -> mailsrv_status {
    match r {
        Ok(v) => {
            on_ok(v);
            unsafe { write_errbuf(errbuf, errlen, "") };
            mailsrv_status::Ok
        }
        Err(e) => {
            unsafe { write_errbuf(errbuf, errlen, e.detail()) };
            mailsrv_status::from_error(&e)
        }
    }
}
