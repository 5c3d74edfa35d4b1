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
//! Gateway routes name kernel next-hop objects (nexthops.rs): before a send, each set of next
//! hops its routes use is checked (or made) on the same socket, under the same lock, so that
//! the table of objects and the writes that name them never disagree.
//!
//! The socket is opened with the agent's other connections, in the agent's namespace, and
//! stays bound to it whatever thread uses it.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use rtnetlink::{
    packet_core::{
        ErrorBuffer, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REPLACE,
        NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    },
    packet_route::{
        RouteNetlinkMessage,
        route::{RouteAttribute, RouteFlags, RouteMessage},
    },
    sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE},
};

use super::nexthops::{
    HopSet, ListedNexthop, NexthopRequest, NexthopTable, RTM_NEWNEXTHOP, matches, parse_nexthop,
};
use crate::netlink::NetlinkError;

/// Requests per `sendto` (the kernel's send buffer holds far more than this many routes).
const MESSAGES_PER_SEND: usize = 256;
/// `NLMSG_ERROR`: an acknowledgement (code 0) or an error (negative errno).
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
const NLMSG_DONE: u16 = 3;
const ENOENT: i32 = 2;

/// What to do with one route message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteRequest {
    /// Create; fails with EEXIST when the key is taken.
    Add,
    /// Create or replace.
    Replace,
    Delete,
}

/// One route request of a batch; `set` indexes the batch's next-hop sets: when the kernel has
/// (or takes) an object for it, the route names the object instead of its next hops.
pub(crate) struct BatchedRoute {
    pub request: RouteRequest,
    pub message: RouteMessage,
    pub set: Option<usize>,
}

pub(crate) struct RouteBatchSocket {
    state: Mutex<BatchState>,
}

struct BatchState {
    socket: Socket,
    /// The next sequence number (acknowledgements left unread by a failed call never match a
    /// later request).
    next_sequence: u32,
    nexthops: NexthopTable,
    /// Whether the kernel's objects have been listed (and manul's adopted) since the socket
    /// was opened: the first batch that names objects lists them, so a restarted agent uses
    /// the objects it made before instead of making them twice.
    listed: bool,
}

impl BatchState {
    fn sequence(&mut self) -> u32 {
        let sequence = self.next_sequence;
        self.next_sequence = sequence.wrapping_add(1);
        sequence
    }
}

impl RouteBatchSocket {
    /// A socket in the calling thread's namespace, acknowledgements without the echoed request.
    pub(crate) fn open() -> Result<RouteBatchSocket, NetlinkError> {
        let socket = own_socket("route batch", |socket| socket.set_cap_ack(true))?;
        Ok(RouteBatchSocket {
            state: Mutex::new(BatchState {
                socket,
                next_sequence: 0,
                nexthops: NexthopTable::default(),
                listed: false,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends every request and returns, in order, the kernel's answer to each: 0 for done, or
    /// the errno it failed with. Routes with a next-hop set name its object; a set the kernel
    /// refuses an object for (a kernel without them, say) leaves its routes spelled out.
    /// Blocking: call it from the blocking pool. Batches of several callers take turns.
    pub(crate) fn write(
        &self,
        routes: Vec<BatchedRoute>,
        sets: &[HopSet],
    ) -> Result<Vec<i32>, NetlinkError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if !state.listed && !sets.is_empty() {
            state.listed = true;
            if let Err(error) = adopt_listing(state) {
                tracing::debug!(%error, "next-hop objects of an earlier run are not adopted");
            }
        }
        let mut checked = HashMap::new();
        let ids: Vec<Option<u32>> = sets
            .iter()
            .map(|set| match ensure_nexthop(state, set, &mut checked) {
                Ok(id) => Some(id),
                Err(error) => {
                    tracing::debug!(%error, ?set, "no next-hop object: the routes spell their next hops out");
                    None
                }
            })
            .collect();
        let requests = routes.into_iter().map(|route| {
            let mut message = route.message;
            if let Some(id) = route.set.and_then(|set| ids.get(set).copied().flatten()) {
                name_nexthop(&mut message, id);
            }
            (route.request, message)
        });
        let answers = send_requests(state, requests);
        let used: Vec<&HopSet> = sets
            .iter()
            .zip(&ids)
            .filter(|(_, id)| id.is_some())
            .map(|(set, _)| set)
            .collect();
        state.nexthops.mark_used(used);
        answers
    }

    /// The generation of the next-hop table: a dump of manul's routes started after reading it
    /// may miss only the routes of batches answered later (`delete_unused_nexthops`).
    pub(crate) fn nexthop_generation(&self) -> u64 {
        self.lock().nexthops.generation()
    }

    /// Every next-hop object of the namespace (anyone's), after which those of manul's that
    /// this process did not know are known (made before a restart). Blocking.
    pub(crate) fn list_nexthops(&self) -> Result<Vec<ListedNexthop>, NetlinkError> {
        adopt_listing(&mut self.lock())
    }

    /// Forgets the objects with these ids, which the kernel deleted; whether this process
    /// knew any of them (manul's own deletions forget theirs before they are sent). Blocking.
    pub(crate) fn forget_nexthops(&self, ids: &[u32]) -> bool {
        !ids.is_empty() && self.lock().nexthops.forget_ids(ids)
    }

    /// Forgets the objects with a next hop on one of these interfaces, which lost their
    /// carrier; whether this process knew any. Blocking.
    pub(crate) fn forget_nexthops_on(&self, interfaces: &[u32]) -> bool {
        !interfaces.is_empty() && self.lock().nexthops.forget_interfaces(interfaces)
    }

    /// Deletes the objects of manul's in `listing` that neither `referenced` (the ids named by
    /// manul's routes in a dump started at generation `since`) nor a batch answered since
    /// names; returns how many. Blocking.
    pub(crate) fn delete_unused_nexthops(
        &self,
        listing: &[ListedNexthop],
        referenced: &HashSet<u32>,
        since: u64,
    ) -> Result<usize, NetlinkError> {
        let mut guard = self.lock();
        let doomed = guard.nexthops.unused(listing, referenced, since);
        for id in &doomed {
            match nexthop_call(&mut guard, &NexthopRequest::Delete(*id)) {
                Ok(_) | Err(NexthopCallError::Kernel(ENOENT)) => {}
                Err(error) => {
                    return Err(NetlinkError::Other(format!(
                        "deleting next-hop object {id}: {error}"
                    )));
                }
            }
        }
        Ok(doomed.len())
    }
}

/// Lists every object of the namespace and adopts manul's (nexthops.rs).
fn adopt_listing(state: &mut BatchState) -> Result<Vec<ListedNexthop>, NetlinkError> {
    let listing = nexthop_call(state, &NexthopRequest::Dump)
        .map_err(|error| NetlinkError::Other(format!("listing next-hop objects: {error}")))?;
    state.nexthops.adopt(&listing);
    state.listed = true;
    Ok(listing)
}

/// The id of the kernel's object for `set`: the one known, when the kernel still holds it as
/// manul made it, else a new one (a group after its members). `checked` holds the sets
/// checked in this batch.
fn ensure_nexthop(
    state: &mut BatchState,
    set: &HopSet,
    checked: &mut HashMap<HopSet, u32>,
) -> Result<u32, NexthopCallError> {
    if let Some(id) = checked.get(set) {
        return Ok(*id);
    }
    let members = if set.len() > 1 {
        set.iter()
            .map(|hop| ensure_nexthop(state, &vec![*hop], checked))
            .collect::<Result<Vec<u32>, _>>()?
    } else {
        Vec::new()
    };
    if let Some((id, known_members)) = state.nexthops.get(set) {
        let known_members = known_members.to_vec();
        if known_members == members {
            match nexthop_call(state, &NexthopRequest::Get(id)) {
                Ok(listed) if listed.iter().any(|listed| matches(listed, set, &members)) => {
                    checked.insert(set.clone(), id);
                    return Ok(id);
                }
                Ok(_) | Err(NexthopCallError::Kernel(ENOENT)) => {}
                Err(error) => return Err(error),
            }
        }
        state.nexthops.forget(set);
    }
    let request = match set.as_slice() {
        [hop] => NexthopRequest::NewSingle(*hop),
        _ => NexthopRequest::NewGroup(&members),
    };
    let made = nexthop_call(state, &request)?;
    let id = made
        .iter()
        .find(|listed| matches(listed, set, &members))
        .map(|listed| listed.id)
        .ok_or(NexthopCallError::NoEcho)?;
    state.nexthops.insert(set.clone(), id, members);
    checked.insert(set.clone(), id);
    Ok(id)
}

/// The route names object `id` instead of spelling its next hops out (the kernel refuses
/// both at once).
fn name_nexthop(message: &mut RouteMessage, id: u32) {
    remove_next_hops(message);
    message.attributes.push(RouteAttribute::NhId(id));
}

/// Takes a route message's next hops out (gateway, device, multipath, onlink), leaving its
/// key: for a route that names an object instead, and for a deletion by key.
pub(crate) fn remove_next_hops(message: &mut RouteMessage) {
    message.attributes.retain(|attribute| {
        !matches!(
            attribute,
            RouteAttribute::Gateway(_)
                | RouteAttribute::Via(_)
                | RouteAttribute::Oif(_)
                | RouteAttribute::MultiPath(_)
        )
    });
    message.header.flags.remove(RouteFlags::Onlink);
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum NexthopCallError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("the kernel answered: {}", std::io::Error::from_raw_os_error(*.0))]
    Kernel(i32),
    #[error("the kernel did not echo the object it made")]
    NoEcho,
}

/// One next-hop request and the objects of its answer (the echo of a creation, the object
/// asked for, or a whole listing), read until its acknowledgement or the end of the dump.
fn nexthop_call(
    state: &mut BatchState,
    request: &NexthopRequest,
) -> Result<Vec<ListedNexthop>, NexthopCallError> {
    let sequence = state.sequence();
    let payload = request.payload();
    let flags = NLM_F_REQUEST
        | match request {
            NexthopRequest::Dump => NLM_F_DUMP,
            NexthopRequest::NewSingle(_) | NexthopRequest::NewGroup(_) => {
                NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO | NLM_F_ACK
            }
            NexthopRequest::Get(_) | NexthopRequest::Delete(_) => NLM_F_ACK,
        };
    let mut buffer = Vec::with_capacity(16 + payload.len());
    buffer.extend_from_slice(&(16 + payload.len() as u32).to_ne_bytes());
    buffer.extend_from_slice(&request.message_type().to_ne_bytes());
    buffer.extend_from_slice(&flags.to_ne_bytes());
    buffer.extend_from_slice(&sequence.to_ne_bytes());
    buffer.extend_from_slice(&0u32.to_ne_bytes());
    buffer.extend_from_slice(&payload);
    state
        .socket
        .send(&buffer, 0)
        .map_err(NexthopCallError::Io)?;
    let mut receive = vec![0u8; 64 * 1024];
    let mut listed = Vec::new();
    loop {
        let length = state
            .socket
            .recv(&mut &mut receive[..], 0)
            .map_err(NexthopCallError::Io)?;
        for message in messages(&receive[..length]) {
            if message.sequence_number() != sequence {
                continue;
            }
            match message.message_type() {
                RTM_NEWNEXTHOP => listed.extend(parse_nexthop(message.payload())),
                NLMSG_DONE => return Ok(listed),
                NLMSG_ERROR => {
                    let code = error_code(message.payload()).unwrap_or(0);
                    return if code == 0 {
                        Ok(listed)
                    } else {
                        Err(NexthopCallError::Kernel(code))
                    };
                }
                _ => {}
            }
        }
    }
}

/// Sends the route requests in sends of `MESSAGES_PER_SEND` and reads their answers.
fn send_requests(
    state: &mut BatchState,
    requests: impl ExactSizeIterator<Item = (RouteRequest, RouteMessage)>,
) -> Result<Vec<i32>, NetlinkError> {
    let BatchState {
        socket,
        next_sequence,
        ..
    } = state;
    let mut answers = Vec::with_capacity(requests.len());
    let mut buffer = Vec::new();
    let mut receive = vec![0u8; 64 * 1024];
    let mut requests = requests.peekable();
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
        .filter_map(|message| Some((message.sequence_number(), error_code(message.payload())?)))
        .collect()
}

/// The positive errno of an `NLMSG_ERROR` payload, 0 for an acknowledgement; None when it
/// is truncated.
pub(crate) fn error_code(payload: &[u8]) -> Option<i32> {
    let error = ErrorBuffer::new_checked(payload).ok()?;
    Some(-error.code().map_or(0, |code| code.get()))
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
