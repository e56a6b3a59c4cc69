//! Glue between core requests and C callbacks: userdata crossing threads, and the one
//! shape every `_async` completion has (userdata, id, status, owned result, detail).

use std::os::raw::{c_char, c_void};

use super::status::mailsrv_status;
use super::strings::cstring;
use crate::core::requests::{Deliver, RequestId};

/// Identifies an async request; never reused within a context.
#[allow(non_camel_case_types)]
pub type mailsrv_request_id = u64;

/// The caller's opaque pointer. mailsrv never dereferences it, only hands it back.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub *mut c_void);

// SAFETY: the pointer is only passed back to the caller's own callback; what it points to
// is the caller's business (documented: callbacks may run on a library thread).
unsafe impl Send for UserData {}

/// A C completion callback for results of type `R`.
pub(crate) type CCallback<R> = unsafe extern "C" fn(
    userdata: *mut c_void,
    id: mailsrv_request_id,
    status: mailsrv_status,
    result: *mut R,
    detail: *const c_char,
);

/// The status an `_async` export returns: OK with the request id written to `id_out` (may be
/// NULL), or the error that kept the request from starting (then no callback will run).
pub(crate) fn started(
    r: crate::core::Result<RequestId>,
    id_out: *mut mailsrv_request_id,
) -> mailsrv_status {
    match r {
        Ok(id) => {
            if let Some(o) = unsafe { id_out.as_mut() } {
                *o = id;
            }
            mailsrv_status::Ok
        }
        Err(e) => mailsrv_status::from_error(&e),
    }
}

/// Wraps a C callback as a core `Deliver`: success hands over an owned `R` (built from the
/// core result by `convert`), failure a NULL result and the error's detail text.
pub(crate) fn deliver_to_c<T: Send + 'static, R: 'static>(
    cb: CCallback<R>,
    userdata: UserData,
    convert: fn(T) -> R,
) -> Deliver<T> {
    Box::new(move |id: RequestId, outcome: crate::core::Result<T>| {
        let ud = userdata;
        match outcome {
            Ok(v) => {
                let owned = Box::into_raw(Box::new(convert(v)));
                unsafe { cb(ud.0, id, mailsrv_status::Ok, owned, c"".as_ptr()) }
            }
            Err(e) => {
                let detail = cstring(e.detail());
                let status = mailsrv_status::from_error(&e);
                unsafe { cb(ud.0, id, status, std::ptr::null_mut(), detail.as_ptr()) }
            }
        }
    })
}
