//! The two socket options that neither nix 0.30 nor socket2 0.6 wraps: TCP_MD5SIG (RFC 2385
//! signatures, per peer address) and IP_MINTTL / IPV6_MINHOPCOUNT (RFC 5082 GTSM). The only
//! unsafe code of the crate, one `setsockopt` call. I/O: setsockopt on a given socket.
//!
//! `struct tcp_md5sig` is built as bytes (no transmutes, no zeroed structs): a 128-byte
//! `sockaddr_storage`, then flags (u8), prefix length (u8), key length (u16), ifindex (i32)
//! and an 80-byte key, all in host byte order but the address and port.

#![allow(unsafe_code)]

use std::{
    io,
    net::IpAddr,
    os::fd::{AsRawFd, BorrowedFd},
};

/// The kernel's limit on an MD5 key (TCP_MD5SIG_MAXKEYLEN).
pub const MD5_MAX_KEY_LEN: usize = 80;
const SOCKADDR_STORAGE_LEN: usize = 128;
const TCP_MD5SIG_LEN: usize = SOCKADDR_STORAGE_LEN + 1 + 1 + 2 + 4 + MD5_MAX_KEY_LEN;

/// Sets (or with an empty key, removes) the MD5 key for segments from/to `peer` on `socket`.
/// On a listening socket it applies to connections accepted from `peer`; an IPv4 peer on an
/// IPv6 (dual-stack) socket is keyed by its v4-mapped address, as the kernel sees it.
pub fn set_tcp_md5sig(
    socket: BorrowedFd<'_>,
    socket_is_ipv6: bool,
    peer: IpAddr,
    key: &[u8],
) -> io::Result<()> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "MD5 key longer than 80 bytes",
        ));
    }
    let peer = match peer {
        IpAddr::V4(v4) if socket_is_ipv6 => IpAddr::V6(v4.to_ipv6_mapped()),
        other => other,
    };
    let mut option = [0u8; TCP_MD5SIG_LEN];
    encode_sockaddr(peer, &mut option[..SOCKADDR_STORAGE_LEN]);
    let key_len = key.len() as u16;
    option[130..132].copy_from_slice(&key_len.to_ne_bytes());
    option[136..136 + key.len()].copy_from_slice(key);
    setsockopt(socket, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &option)
}

/// GTSM receive check: drop segments whose TTL (hop limit) is below `min_ttl`.
pub fn set_min_ttl(socket: BorrowedFd<'_>, ipv6: bool, min_ttl: u8) -> io::Result<()> {
    let value = libc::c_int::from(min_ttl).to_ne_bytes();
    if ipv6 {
        setsockopt(socket, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &value)
    } else {
        setsockopt(socket, libc::IPPROTO_IP, libc::IP_MINTTL, &value)
    }
}

/// Writes `sockaddr_in` or `sockaddr_in6` (port 0) at the start of `out`.
fn encode_sockaddr(address: IpAddr, out: &mut [u8]) {
    match address {
        IpAddr::V4(v4) => {
            out[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            // sin_port (2..4) stays 0.
            out[4..8].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            // sin6_port (2..4) and sin6_flowinfo (4..8) stay 0.
            out[8..24].copy_from_slice(&v6.octets());
            // sin6_scope_id (24..28) stays 0.
        }
    }
}

fn setsockopt(
    socket: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &[u8],
) -> io::Result<()> {
    // SAFETY: `socket` is a live descriptor for the duration of the borrow, `value` points to
    // `value.len()` initialised bytes that outlive the call, and the kernel only reads them
    // (copy_from_user). Invalid combinations are reported through the return value.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast::<libc::c_void>(),
            value.len() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener};
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn sockaddr_layout() {
        let mut out = [0u8; SOCKADDR_STORAGE_LEN];
        encode_sockaddr(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), &mut out);
        assert_eq!(&out[4..8], &[192, 0, 2, 1]);
        assert_eq!(u16::from_ne_bytes([out[0], out[1]]), libc::AF_INET as u16);
        assert_eq!(TCP_MD5SIG_LEN, 216);
    }

    /// Loopback in the test's own namespace: TCP_MD5SIG needs no privilege.
    #[test]
    fn md5_and_min_ttl_on_a_listening_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        set_tcp_md5sig(listener.as_fd(), false, peer, b"secret").unwrap();
        set_tcp_md5sig(listener.as_fd(), false, peer, b"").unwrap();
        set_min_ttl(listener.as_fd(), false, 254).unwrap();
        let too_long = [b'x'; 81];
        assert!(set_tcp_md5sig(listener.as_fd(), false, peer, &too_long).is_err());
    }
}
