//! The panic boundary and NULL checks that open every exported function (docs/design.md §4).
//! A panic must never cross into C: it would abort the mail client.

use std::cell::Cell;
use std::os::raw::c_int;
use std::sync::Once;

/// The value an export returns when its body panicked.
pub trait PanicDefault {
    fn panic_default() -> Self;
}

/// The value an export returns when a required pointer argument was NULL.
pub trait NullDefault {
    fn null_default() -> Self;
}

/// Types whose panic and NULL defaults are the same "nothing" value.
macro_rules! plain_default {
    ($($t:ty => $v:expr),* $(,)?) => {$(
        impl PanicDefault for $t { fn panic_default() -> Self { $v } }
        impl NullDefault for $t { fn null_default() -> Self { $v } }
    )*};
}

plain_default! {
    () => (),
    bool => false,
    u16 => 0,
    u32 => 0,
    u64 => 0,
    usize => 0,
    c_int => -1,
}

impl<T> PanicDefault for *const T {
    fn panic_default() -> Self {
        std::ptr::null()
    }
}

impl<T> NullDefault for *const T {
    fn null_default() -> Self {
        std::ptr::null()
    }
}

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Marks this thread as inside an export while alive.
pub struct Inside;

impl Drop for Inside {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Enters an export. The first call installs a panic hook that keeps mailsrv's own panics
/// quiet (the library never prints: the panic becomes MAILSRV_STATUS_PANIC instead) and
/// passes every other panic of the host process to the hook that was there before.
pub fn enter() -> Inside {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = DEPTH.with(|d| d.get() > 0)
                || std::thread::current()
                    .name()
                    .is_some_and(|n| n.starts_with("mailsrv-"));
            if !ours {
                previous(info);
            }
        }));
    });
    DEPTH.with(|d| d.set(d.get() + 1));
    Inside
}

/// Runs an export's body, turning a panic into the return type's panic default.
macro_rules! ffi_boundary {
    ($($body:tt)*) => {{
        let _inside = $crate::ffi::boundary::enter();
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(v) => v,
            Err(_) => $crate::ffi::boundary::PanicDefault::panic_default(),
        }
    }};
}

/// Borrows `*ptr`, or returns the NULL default from the enclosing boundary.
macro_rules! try_ref {
    ($ptr:expr) => {
        match unsafe { $ptr.as_ref() } {
            Some(r) => r,
            None => return $crate::ffi::boundary::NullDefault::null_default(),
        }
    };
}

/// Borrows `*ptr` mutably, or returns the NULL default.
macro_rules! try_mut {
    ($ptr:expr) => {
        match unsafe { $ptr.as_mut() } {
            Some(r) => r,
            None => return $crate::ffi::boundary::NullDefault::null_default(),
        }
    };
}

pub(crate) use {ffi_boundary, try_mut, try_ref};

/// Reads a required UTF-8 C string argument in a status-returning export:
/// NULL returns NULL_ARG, non-UTF-8 returns INVALID_ARG.
macro_rules! try_str {
    ($ptr:expr) => {{
        if $ptr.is_null() {
            return $crate::ffi::status::mailsrv_status::NullArg;
        }
        match unsafe { $crate::ffi::strings::read_str($ptr, stringify!($ptr)) } {
            Ok(s) => s,
            Err(_) => return $crate::ffi::status::mailsrv_status::InvalidArg,
        }
    }};
}

pub(crate) use try_str;

/// Frees an object handed out with `Box::into_raw`; NULL does nothing (every `_free`).
///
/// # Safety
/// `p` is NULL or came from `Box::into_raw` and is not used afterwards.
pub(crate) unsafe fn free_box<T>(p: *mut T) {
    if !p.is_null() {
        drop(unsafe { Box::from_raw(p) });
    }
}
