//! Socket options socket2 does not cover: TCP_FASTOPEN (a listener's queue),
//! TCP_FASTOPEN_CONNECT, TCP_INFO, and `if_nametoindex`.
//!
//! Owns: the `getsockopt`/`setsockopt` calls behind [`options`](crate::options)'
//! read-back helpers and behind the driver's fast-open options.
//! Contract: every function works on a borrowed socket and leaves it as it was but for the
//! option set; off Linux (interface indexes: off Unix) each answers `Unsupported`.
//!
//! Safety model: the kernel writes only into locals passed with their exact sizes, during
//! the call; nothing outlives it.
#![allow(unsafe_code)] // getsockopt/setsockopt into sized locals; each block has a SAFETY note.

use std::io;

#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;

use socket2::SockRef;

/// `TCPI_OPT_SYN_DATA` (linux/tcp.h): the SYN carried data the peer acknowledged.
#[cfg(target_os = "linux")]
const TCPI_OPT_SYN_DATA: u8 = 32;

/// What TCP_INFO says that the driver and its users read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpInfo {
    /// `tcpi_state` (TCP_ESTABLISHED = 1, ..., TCP_LISTEN = 10).
    pub(crate) state: u8,
    /// On a listener: connections in the accept queue.
    pub(crate) unacked: u32,
    /// On a listener: the accept queue's limit.
    pub(crate) sacked: u32,
    /// `TCPI_OPT_SYN_DATA` is set.
    pub(crate) syn_data: bool,
}

/// TCP_INFO of `socket`.
#[cfg(target_os = "linux")]
pub(crate) fn tcp_info(socket: &SockRef<'_>) -> io::Result<TcpInfo> {
    // SAFETY: tcp_info is plain old data; zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` and `len` are live locals; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpInfo {
        state: info.tcpi_state,
        unacked: info.tcpi_unacked,
        sacked: info.tcpi_sacked,
        syn_data: info.tcpi_options & TCPI_OPT_SYN_DATA != 0,
    })
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn tcp_info(_socket: &SockRef<'_>) -> io::Result<TcpInfo> {
    Err(unsupported("TCP_INFO"))
}

/// Reads an `int` TCP option.
#[cfg(target_os = "linux")]
fn get_tcp_int(socket: &SockRef<'_>, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            option,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets an `int` TCP option.
#[cfg(target_os = "linux")]
fn set_tcp_int(socket: &SockRef<'_>, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a live `int` with its size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            option,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// TCP_FASTOPEN of a listener: its queue of connections whose SYN carried data.
#[cfg(target_os = "linux")]
pub(crate) fn set_fastopen(socket: &SockRef<'_>, queue: i32) -> io::Result<()> {
    set_tcp_int(socket, libc::TCP_FASTOPEN, queue)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn set_fastopen(_socket: &SockRef<'_>, _queue: i32) -> io::Result<()> {
    Err(unsupported("TCP_FASTOPEN"))
}

#[cfg(target_os = "linux")]
pub(crate) fn fastopen(socket: &SockRef<'_>) -> io::Result<u32> {
    get_tcp_int(socket, libc::TCP_FASTOPEN).map(|v| v.max(0) as u32)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn fastopen(_socket: &SockRef<'_>) -> io::Result<u32> {
    Err(unsupported("TCP_FASTOPEN"))
}

/// TCP_FASTOPEN_CONNECT (Linux 4.11): a connect waits for the first write, whose bytes go
/// in the SYN when the kernel holds a Fast Open cookie of the server.
#[cfg(target_os = "linux")]
pub(crate) fn set_fastopen_connect(socket: &SockRef<'_>, on: bool) -> io::Result<()> {
    set_tcp_int(socket, libc::TCP_FASTOPEN_CONNECT, libc::c_int::from(on))
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn set_fastopen_connect(_socket: &SockRef<'_>, _on: bool) -> io::Result<()> {
    Err(unsupported("TCP_FASTOPEN_CONNECT"))
}

#[cfg(target_os = "linux")]
pub(crate) fn fastopen_connect(socket: &SockRef<'_>) -> io::Result<bool> {
    get_tcp_int(socket, libc::TCP_FASTOPEN_CONNECT).map(|v| v != 0)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn fastopen_connect(_socket: &SockRef<'_>) -> io::Result<bool> {
    Err(unsupported("TCP_FASTOPEN_CONNECT"))
}

/// Closes TCP socket `socket` without a FIN or a reset: TCP_REPAIR first (CAP_NET_ADMIN),
/// so the kernel drops the connection silently, as a crashed or unplugged peer would.
#[cfg(target_os = "linux")]
pub(crate) fn close_silently(socket: std::net::TcpStream) -> io::Result<()> {
    /// `TCP_REPAIR` (linux/tcp.h).
    const TCP_REPAIR: libc::c_int = 19;
    set_tcp_int(&SockRef::from(&socket), TCP_REPAIR, 1)?;
    drop(socket);
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn close_silently(_socket: std::net::TcpStream) -> io::Result<()> {
    Err(unsupported("TCP_REPAIR"))
}

/// `if_nametoindex(name)`.
#[cfg(unix)]
pub(crate) fn interface_index(name: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "an interface name cannot hold a NUL byte",
        )
    })?;
    // SAFETY: `name` is a live NUL-terminated string; the call only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        let error = io::Error::last_os_error();
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface {name:?}: {error}"),
        ));
    }
    Ok(index)
}

#[cfg(not(unix))]
pub(crate) fn interface_index(_name: &str) -> io::Result<u32> {
    Err(unsupported("if_nametoindex"))
}

#[cfg(not(target_os = "linux"))]
fn unsupported(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, format!("{what} needs Linux"))
}
