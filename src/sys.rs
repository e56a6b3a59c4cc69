//! The few system calls the safe core needs that std does not offer. This is the only
//! `unsafe` outside the C layer; `core` itself forbids it.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

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
