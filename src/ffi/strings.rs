//! Strings across the boundary: NUL-terminated UTF-8 in, error buffers and owned C strings out.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;

use crate::core::Error;

/// Reads a required C string: NULL is NULL_ARG's business, non-UTF-8 is INVALID_ARG.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
pub unsafe fn read_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::InvalidArg(format!("{what} is NULL")));
    }
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Error::InvalidArg(format!("{what} is not valid UTF-8")))
}

/// Writes `text` into a caller buffer: always NUL-terminated, truncated on a character
/// boundary to fit; nothing happens for a NULL buffer or a zero length.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
pub unsafe fn write_errbuf(buf: *mut c_char, len: usize, text: &str) {
    if buf.is_null() || len == 0 {
        return;
    }
    let mut n = text.len().min(len - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), buf, n);
        *buf.add(n) = 0;
    }
}

/// A C string of `text`; interior NULs (from hostile input echoed in details) become `\0`.
pub fn cstring(text: &str) -> CString {
    CString::new(text.replace('\0', "\\0")).unwrap_or_default()
}

/// Frees a string mailsrv handed over as owned (`char *`, e.g. mailsrv_history_export()).
/// NULL does nothing. Never use libc free() on it.
/// Since 0.1.
///
/// # Safety
/// `s` NULL or an owned string from mailsrv, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mailsrv_string_free(s: *mut c_char) {
    super::boundary::ffi_boundary! {
        if !s.is_null() {
            drop(unsafe { CString::from_raw(s) });
        }
    }
}
