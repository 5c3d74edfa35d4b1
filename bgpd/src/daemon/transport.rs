//! TCP for BGP: listening sockets (one per listen address, IPv6 ones v6-only so that "0.0.0.0"
//! and "::" coexist), outgoing connections bound to the configured source, and the per-peer
//! options: RFC 2385 MD5 keys (on the listener for the peer's address, and on the connecting
//! socket) and RFC 5082 GTSM (send TTL 255 through socket2, minimum TTL 254 through `sys`).
//! Does I/O.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::AsFd,
    time::Duration,
};

use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::{config::PeerSettings, sys};

/// GTSM: we send with this TTL and accept one hop less at most.
pub const GTSM_TTL: u8 = 255;
pub const GTSM_MIN_TTL: u8 = 254;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: io::Error,
    },
    #[error("connect to {address}: {source}")]
    Connect {
        address: SocketAddr,
        source: io::Error,
    },
    #[error("connect to {address}: no answer in {timeout:?}")]
    ConnectTimeout {
        address: SocketAddr,
        timeout: Duration,
    },
    #[error("{option} for {peer}: {source}")]
    Option {
        option: &'static str,
        peer: IpAddr,
        source: io::Error,
    },
}

/// Binds a listening socket (address reuse on, v6-only for IPv6, TTL 255, non-blocking).
pub fn listen(address: SocketAddr) -> Result<TcpListener, TransportError> {
    let error = |source| TransportError::Listen { address, source };
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None).map_err(error)?;
    socket.set_reuse_address(true).map_err(error)?;
    // GTSM: the SYN-ACK goes out before we know the peer, with the listener's TTL; a peer
    // that checks TTL >= 254 drops it unless that is 255. No harm to the other peers.
    if address.is_ipv6() {
        socket.set_only_v6(true).map_err(error)?;
        socket
            .set_unicast_hops_v6(u32::from(GTSM_TTL))
            .map_err(error)?;
    } else {
        socket.set_ttl_v4(u32::from(GTSM_TTL)).map_err(error)?;
    }
    socket.set_nonblocking(true).map_err(error)?;
    socket.bind(&address.into()).map_err(error)?;
    socket.listen(128).map_err(error)?;
    TcpListener::from_std(socket.into()).map_err(error)
}

/// Installs (or with `None`, removes) the MD5 key of `peer` on a listening socket. Listeners
/// of the other address family are left alone.
pub fn set_listener_md5(
    listener: &TcpListener,
    peer: IpAddr,
    password: Option<&str>,
) -> Result<(), TransportError> {
    let is_v6 = listener.local_addr().is_ok_and(|local| local.is_ipv6());
    if is_v6 != peer.is_ipv6() {
        return Ok(());
    }
    let key = password.unwrap_or_default().as_bytes();
    match sys::set_tcp_md5sig(listener.as_fd(), is_v6, peer, key) {
        // Removing a key that was never installed.
        Err(error) if password.is_none() && error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        result => result.map_err(|source| TransportError::Option {
            option: "TCP_MD5SIG",
            peer,
            source,
        }),
    }
}

/// Sets TTL 255 and minimum TTL 254 on a connected or connecting socket (GTSM).
pub fn set_gtsm<S: AsFd>(socket: &S, peer: IpAddr) -> Result<(), TransportError> {
    let option_error = |option| {
        move |source| TransportError::Option {
            option,
            peer,
            source,
        }
    };
    let socket_ref = SockRef::from(socket);
    if peer.is_ipv6() {
        socket_ref
            .set_unicast_hops_v6(u32::from(GTSM_TTL))
            .map_err(option_error("IPV6_UNICAST_HOPS"))?;
    } else {
        socket_ref
            .set_ttl_v4(u32::from(GTSM_TTL))
            .map_err(option_error("IP_TTL"))?;
    }
    sys::set_min_ttl(socket.as_fd(), peer.is_ipv6(), GTSM_MIN_TTL)
        .map_err(option_error("IP_MINTTL"))
}

/// Options for an accepted connection of `peer` (the MD5 key came from the listener).
pub fn prepare_accepted(stream: &TcpStream, settings: &PeerSettings) -> Result<(), TransportError> {
    let _ = stream.set_nodelay(true);
    if settings.ttl_security {
        set_gtsm(stream, settings.address)?;
    }
    Ok(())
}

/// Connects to the peer from its configured source address and port, with MD5 and GTSM set
/// before the SYN goes out.
pub async fn connect(
    settings: &PeerSettings,
    timeout: Duration,
) -> Result<TcpStream, TransportError> {
    let address = SocketAddr::new(settings.address, settings.port);
    let error = |source| TransportError::Connect { address, source };
    let socket = if address.is_ipv6() {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
    .map_err(error)?;
    if settings.local_address.is_some() || settings.local_port != 0 {
        let local_ip = settings.local_address.unwrap_or(if address.is_ipv6() {
            IpAddr::from([0u16; 8])
        } else {
            IpAddr::from([0u8; 4])
        });
        socket.set_reuseaddr(true).map_err(error)?;
        socket
            .bind(SocketAddr::new(local_ip, settings.local_port))
            .map_err(error)?;
    }
    if let Some(password) = &settings.md5_password {
        sys::set_tcp_md5sig(
            socket.as_fd(),
            address.is_ipv6(),
            settings.address,
            password.as_bytes(),
        )
        .map_err(|source| TransportError::Option {
            option: "TCP_MD5SIG",
            peer: settings.address,
            source,
        })?;
    }
    if settings.ttl_security {
        set_gtsm(&socket, settings.address)?;
    }
    let stream = tokio::time::timeout(timeout, socket.connect(address))
        .await
        .map_err(|_| TransportError::ConnectTimeout { address, timeout })?
        .map_err(error)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The peer's address as configured: IPv4-mapped IPv6 addresses become IPv4.
pub fn canonical(address: IpAddr) -> IpAddr {
    address.to_canonical()
}
