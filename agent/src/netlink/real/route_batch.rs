//! Route writes in bulk on a netlink socket of their own: up to `MESSAGES_PER_SEND` route
//! requests go to the kernel in one `sendto`, which handles them one after the other. Only the
//! last request of a send asks for an acknowledgement: the kernel answers the others only when
//! they fail, and the last one's answer says every earlier one has been handled (netlink
//! handles a send's messages in order). The kernel queues each answer as a datagram of its
//! own and `recv` takes one at a time, so an acknowledgement per route cost a million `recv`s
//! for a million routes. Through the shared rtnetlink connection every route cost a request
//! future, a channel hop, a `sendto`, a `recv` and a decode of the echoed request. Does I/O (a
//! blocking socket, used from the blocking pool).
//!
//! The socket is opened with the agent's other connections, in the agent's namespace, and
//! stays bound to it whatever thread uses it.

use std::sync::Mutex;

use rtnetlink::{
    packet_core::{
        ErrorBuffer, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
        NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    },
    packet_route::{RouteNetlinkMessage, route::RouteMessage},
    sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE},
};

use crate::netlink::NetlinkError;

/// Requests per `sendto` (the kernel's send buffer holds far more than this many routes).
const MESSAGES_PER_SEND: usize = 256;
/// `NLMSG_ERROR`: an acknowledgement (code 0) or an error (negative errno).
pub(crate) const NLMSG_ERROR: u16 = 2;

/// What to do with one route message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteRequest {
    /// Create; fails with EEXIST when the key is taken.
    Add,
    /// Create or replace.
    Replace,
    Delete,
}

pub(crate) struct RouteBatchSocket {
    /// The socket and the next sequence number (acknowledgements left unread by a failed call
    /// never match a later request).
    socket: Mutex<(Socket, u32)>,
}

impl RouteBatchSocket {
    /// A socket in the calling thread's namespace, acknowledgements without the echoed request.
    pub(crate) fn open() -> Result<RouteBatchSocket, NetlinkError> {
        let socket = own_socket("route batch", |socket| socket.set_cap_ack(true))?;
        Ok(RouteBatchSocket {
            socket: Mutex::new((socket, 0)),
        })
    }

    /// Sends every request and returns, in order, the kernel's answer to each: 0 for done, or
    /// the errno it failed with. Blocking: call it from the blocking pool. Batches of several
    /// callers take turns.
    pub(crate) fn write(
        &self,
        requests: Vec<(RouteRequest, RouteMessage)>,
    ) -> Result<Vec<i32>, NetlinkError> {
        let mut guard = self
            .socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (socket, next_sequence) = &mut *guard;
        let mut answers = Vec::with_capacity(requests.len());
        let mut buffer = Vec::new();
        let mut receive = vec![0u8; 64 * 1024];
        let mut requests = requests.into_iter().peekable();
        while requests.peek().is_some() {
            buffer.clear();
            let base = *next_sequence;
            let mut sent = 0;
            while sent < MESSAGES_PER_SEND {
                let Some((request, message)) = requests.next() else {
                    break;
                };
                let last = sent + 1 == MESSAGES_PER_SEND || requests.peek().is_none();
                append_request(
                    &mut buffer,
                    request,
                    message,
                    base.wrapping_add(sent as u32),
                    last,
                );
                sent += 1;
            }
            *next_sequence = base.wrapping_add(sent as u32);
            socket
                .send(&buffer, 0)
                .map_err(|error| NetlinkError::Other(format!("sending routes: {error}")))?;
            let first = answers.len();
            answers.resize(first + sent, None);
            // Failures of earlier requests come first, then the answer to the last one.
            while answers[first + sent - 1].is_none() {
                let length = socket.recv(&mut &mut receive[..], 0).map_err(|error| {
                    NetlinkError::Other(format!("reading route acknowledgements: {error}"))
                })?;
                for (sequence, code) in acknowledgements(&receive[..length]) {
                    let index = sequence.wrapping_sub(base) as usize;
                    if index >= sent {
                        continue;
                    }
                    if let Some(slot @ None) = answers.get_mut(first + index) {
                        *slot = Some(code);
                    }
                }
            }
        }
        // No answer: handled without failing.
        Ok(answers.into_iter().map(|code| code.unwrap_or(0)).collect())
    }
}

/// Appends one request, numbered `sequence`, to `buffer`; with `acknowledge`, the kernel
/// answers it even when it succeeds.
fn append_request(
    buffer: &mut Vec<u8>,
    request: RouteRequest,
    message: RouteMessage,
    sequence: u32,
    acknowledge: bool,
) {
    let (inner, flags) = match request {
        RouteRequest::Add => (
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_EXCL,
        ),
        RouteRequest::Replace => (
            RouteNetlinkMessage::NewRoute(message),
            NLM_F_CREATE | NLM_F_REPLACE,
        ),
        RouteRequest::Delete => (RouteNetlinkMessage::DelRoute(message), 0),
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags | if acknowledge { NLM_F_ACK } else { 0 };
    header.sequence_number = sequence;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
    // `finalize` with the length computed once (each computation walks every attribute).
    let length = packet.buffer_len();
    packet.header.length = u32::try_from(length).unwrap_or(u32::MAX);
    packet.header.message_type = packet.payload.message_type();
    let start = buffer.len();
    buffer.resize(start + length, 0);
    packet.serialize(&mut buffer[start..]);
}

/// A NETLINK_ROUTE socket of manul's own (`what` names it in errors), bound and connected to
/// the kernel in the calling thread's namespace, with `configure` applied.
pub(crate) fn own_socket(
    what: &str,
    configure: impl FnOnce(&Socket) -> std::io::Result<()>,
) -> Result<Socket, NetlinkError> {
    own_socket_of(NETLINK_ROUTE, what, configure)
}

/// `own_socket` for another netlink protocol (`NETLINK_GENERIC` for ethtool).
pub(crate) fn own_socket_of(
    protocol: isize,
    what: &str,
    configure: impl FnOnce(&Socket) -> std::io::Result<()>,
) -> Result<Socket, NetlinkError> {
    let failed =
        |error: std::io::Error| NetlinkError::Other(format!("opening the {what} socket: {error}"));
    let mut socket = Socket::new(protocol).map_err(failed)?;
    socket.bind_auto().map_err(failed)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(failed)?;
    configure(&socket).map_err(failed)?;
    Ok(socket)
}

/// The netlink messages of a datagram, in order; a truncated one ends them.
pub(crate) fn messages(datagram: &[u8]) -> impl Iterator<Item = NetlinkBuffer<&[u8]>> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let message = NetlinkBuffer::new_checked(datagram.get(offset..)?).ok()?;
        let length = message.length() as usize;
        if length == 0 {
            return None;
        }
        // Messages are 4-byte aligned.
        offset += (length + 3) & !3;
        Some(message)
    })
}

/// (sequence, errno) of every acknowledgement in a datagram: 0 for success, else the positive
/// errno. Anything else in it, or a truncated message, is skipped.
fn acknowledgements(datagram: &[u8]) -> Vec<(u32, i32)> {
    messages(datagram)
        .filter(|message| message.message_type() == NLMSG_ERROR)
        .filter_map(|message| {
            let error = ErrorBuffer::new_checked(message.payload()).ok()?;
            Some((
                message.sequence_number(),
                -error.code().map_or(0, |code| code.get()),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_are_read_with_their_sequence_and_errno() {
        // Two capped acknowledgements as the kernel sends them: a success for request 0 and
        // EEXIST (-17) for request 1, each with the 16-byte header of the request.
        let mut datagram = Vec::new();
        for (sequence, code) in [(0u32, 0i32), (1, -17)] {
            datagram.extend_from_slice(&36u32.to_ne_bytes());
            datagram.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            datagram.extend_from_slice(&0x100u16.to_ne_bytes());
            datagram.extend_from_slice(&sequence.to_ne_bytes());
            datagram.extend_from_slice(&0u32.to_ne_bytes());
            datagram.extend_from_slice(&code.to_ne_bytes());
            datagram.extend_from_slice(&[0u8; 16]);
        }
        assert_eq!(acknowledgements(&datagram), vec![(0, 0), (1, 17)]);
        assert_eq!(acknowledgements(&datagram[..30]), Vec::new());
    }
}
