//! Route dumps on a netlink socket of their own, read and parsed in place as the kernel sends
//! them. Through the shared rtnetlink connection a dump of a million routes was decoded by its
//! connection task into messages queued on an unbounded channel, which ran ahead of the reader
//! (tens of MiB at 1M routes); here the kernel produces the next part of the dump only when
//! this socket reads, so memory stays at one receive buffer. Does I/O (a blocking socket, used
//! from the blocking pool).
//!
//! The socket is opened with the agent's other connections, in the agent's namespace, and
//! stays bound to it whatever thread uses it. It has strict checking on, so the kernel filters
//! by table and protocol.

use std::sync::Mutex;

use rtnetlink::{
    packet_core::{
        NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload, Parseable,
    },
    packet_route::{RouteNetlinkMessage, route::RouteMessage},
    sys::Socket,
};

use super::route_batch::{error_code, messages, own_socket};
use crate::netlink::NetlinkError;

/// `NLMSG_ERROR`: an error (negative errno) in answer to the request.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
const NLMSG_DONE: u16 = 3;
/// `RTM_NEWROUTE`: one route of the dump.
const RTM_NEWROUTE: u16 = 24;
/// Room for the largest datagram a dump sends (the kernel fills up to 32 KiB).
const RECEIVE_BUFFER: usize = 128 * 1024;

pub(crate) struct RouteDumpSocket {
    /// The socket and the next sequence number (messages of an earlier dump never match).
    socket: Mutex<(Socket, u32)>,
}

impl RouteDumpSocket {
    /// A socket in the calling thread's namespace.
    pub(crate) fn open() -> Result<RouteDumpSocket, NetlinkError> {
        let socket = own_socket("route dump", |socket| {
            socket.set_netlink_get_strict_chk(true)
        })?;
        Ok(RouteDumpSocket {
            socket: Mutex::new((socket, 0)),
        })
    }

    /// Sends `request` as a dump and hands every route of the answer to `visit` until the
    /// dump ends; `visit` returning false stops the handing (the rest of the dump is still
    /// read, so the socket is ready for the next). Blocking: call it from the blocking pool.
    pub(crate) fn dump(
        &self,
        request: RouteMessage,
        mut visit: impl FnMut(&RouteMessage) -> bool,
    ) -> Result<(), NetlinkError> {
        let mut guard = self
            .socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (socket, next_sequence) = &mut *guard;
        let sequence = *next_sequence;
        *next_sequence = sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = sequence;
        let mut packet = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetRoute(request)),
        );
        packet.finalize();
        let mut buffer = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buffer);
        socket
            .send(&buffer, 0)
            .map_err(|error| NetlinkError::Other(format!("requesting a route dump: {error}")))?;
        let mut receive = vec![0u8; RECEIVE_BUFFER];
        let mut handing = true;
        loop {
            let length = socket
                .recv(&mut &mut receive[..], 0)
                .map_err(|error| NetlinkError::Other(format!("reading a route dump: {error}")))?;
            match read_datagram(&receive[..length], sequence, &mut |message| {
                if handing {
                    handing = visit(message);
                }
            }) {
                Datagram::More => {}
                Datagram::Done => return Ok(()),
                Datagram::Failed(errno) => {
                    return Err(NetlinkError::Other(format!(
                        "the kernel refused a route dump: {}",
                        std::io::Error::from_raw_os_error(errno)
                    )));
                }
            }
        }
    }
}

/// What a datagram of a dump said.
#[derive(Debug, PartialEq, Eq)]
enum Datagram {
    More,
    Done,
    /// The request failed with this errno.
    Failed(i32),
}

/// Hands the routes of one datagram numbered `sequence` to `visit`; messages of other
/// sequences (an earlier dump's) and routes that do not parse are skipped.
fn read_datagram(datagram: &[u8], sequence: u32, visit: &mut dyn FnMut(&RouteMessage)) -> Datagram {
    for message in messages(datagram) {
        if message.sequence_number() != sequence {
            continue;
        }
        match message.message_type() {
            NLMSG_DONE => return Datagram::Done,
            NLMSG_ERROR => {
                let code = error_code(message.payload()).unwrap_or(0);
                return if code == 0 {
                    Datagram::Done
                } else {
                    Datagram::Failed(code)
                };
            }
            RTM_NEWROUTE => {
                if let Ok(route) = RouteMessage::parse(message.payload()) {
                    visit(&route);
                }
            }
            _ => {}
        }
    }
    Datagram::More
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use rtnetlink::{RouteMessageBuilder, packet_core::NLMSG_DONE as DONE};

    use super::*;

    fn datagram(messages: &[(u16, u32, Vec<u8>)]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (kind, sequence, payload) in messages {
            let length = 16 + payload.len();
            bytes.extend_from_slice(&(length as u32).to_ne_bytes());
            bytes.extend_from_slice(&kind.to_ne_bytes());
            bytes.extend_from_slice(&0u16.to_ne_bytes());
            bytes.extend_from_slice(&sequence.to_ne_bytes());
            bytes.extend_from_slice(&0u32.to_ne_bytes());
            bytes.extend_from_slice(payload);
            while bytes.len() % 4 != 0 {
                bytes.push(0);
            }
        }
        bytes
    }

    fn route_payload(destination: Ipv4Addr) -> Vec<u8> {
        use rtnetlink::packet_core::Emitable;
        let message = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(destination, 24)
            .build();
        let mut bytes = vec![0u8; message.buffer_len()];
        message.emit(&mut bytes);
        bytes
    }

    #[test]
    fn a_datagram_yields_its_dumps_routes_and_says_when_the_dump_ends() {
        assert_eq!(DONE, NLMSG_DONE);
        let bytes = datagram(&[
            (RTM_NEWROUTE, 7, route_payload(Ipv4Addr::new(10, 0, 1, 0))),
            // An earlier dump's route: skipped.
            (RTM_NEWROUTE, 6, route_payload(Ipv4Addr::new(10, 0, 2, 0))),
            (RTM_NEWROUTE, 7, route_payload(Ipv4Addr::new(10, 0, 3, 0))),
        ]);
        let mut seen = Vec::new();
        let said = read_datagram(&bytes, 7, &mut |route| {
            seen.push(route.header.destination_prefix_length)
        });
        assert_eq!(said, Datagram::More);
        assert_eq!(seen, vec![24, 24]);
        let done = datagram(&[(NLMSG_DONE, 6, vec![0; 4]), (NLMSG_DONE, 7, vec![0; 4])]);
        assert_eq!(read_datagram(&done, 7, &mut |_| {}), Datagram::Done);
        let mut refused = 0i32.wrapping_sub(16).to_ne_bytes().to_vec();
        refused.extend_from_slice(&[0; 16]);
        let failed = datagram(&[(NLMSG_ERROR, 7, refused)]);
        assert_eq!(read_datagram(&failed, 7, &mut |_| {}), Datagram::Failed(16));
        // A truncated datagram ends without a panic.
        assert_eq!(read_datagram(&bytes[..10], 7, &mut |_| {}), Datagram::More);
    }
}
