//! The few system calls the safe core needs that std does not offer. This is the only
//! `unsafe` outside the C layer; `core` itself forbids it.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::raw::c_int;

/// The socket, read and written without waiting whatever its mode (`MSG_DONTWAIT`): the
/// `try_*` methods use it, so a blocking-mode socket never blocks a caller that holds a lock.
pub struct NoWait<'a>(pub &'a std::net::TcpStream);

impl Read for NoWait<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes; the descriptor is open.
        let n = unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}

impl Write for NoWait<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` readable bytes; the descriptor is open.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with every signal blocked on the calling thread, then restores its mask. Threads
/// that `f` starts inherit the full mask, so a terminal client's SIGINT or SIGWINCH is never
/// delivered to a library thread (docs/threads.md).
pub fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    let old = block_all_signals();
    let r = f();
    // SAFETY: `old` is the mask pthread_sigmask returned for this thread.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    r
}

/// Blocks every signal on the calling thread (for threads the library owns); returns the
/// previous mask. SIGKILL and SIGSTOP cannot be blocked, and a fault (SIGSEGV, SIGBUS) still
/// ends the process.
pub fn block_all_signals() -> libc::sigset_t {
    // SAFETY: both sets are plain values owned here; pthread_sigmask only reads `all` and
    // writes `old`.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    }
}

/// A close-on-exec duplicate of the caller's descriptor `fd`, which must be a connected
/// stream socket (TCP, or a Unix-domain socket to a proxy): for connections over a socket
/// the caller opened. The caller keeps `fd`. `Err` holds the reason.
pub fn dup_stream_socket(fd: c_int) -> Result<std::net::TcpStream, String> {
    let mut kind: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `kind`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(format!(
            "descriptor {fd} is not a socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    if kind != libc::SOCK_STREAM {
        return Err(format!("descriptor {fd} is not a stream socket"));
    }
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut alen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getpeername writes at most `alen` bytes into `addr`.
    if unsafe {
        libc::getpeername(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut alen,
        )
    } != 0
    {
        return Err(format!(
            "socket {fd} is not connected: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fcntl with F_DUPFD_CLOEXEC returns a new descriptor we own, or -1.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(format!(
            "cannot duplicate descriptor {fd}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `dup` is a fresh descriptor owned by nothing else.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(dup) };
    Ok(std::net::TcpStream::from(owned))
}
