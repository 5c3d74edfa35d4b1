//! One TCP connection of a peer: a reader task that decodes bytes into `fsm::Event`s (a batch
//! per read, through a bounded channel: back-pressure towards the peer's TCP window) and a
//! writer task that encodes messages and RIB updates into large buffers, writes them, and
//! reports `SendProgress`. Does I/O (the socket).
//!
//! The writer takes RIB updates from the session's `OutboundQueue` only when it is about to
//! write, a chunk at a time: while the peer's TCP does not drain, changes wait there coalesced
//! per prefix instead of piling up as encoded buffers or update batches.
//!
//! The reader decodes with the codec context of the session; that context only matters for
//! UPDATEs, which cannot come before the OPEN exchange ends, so after decoding an OPEN the
//! reader waits for the peer task to send it the negotiated context.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::mpsc::{self, error::TryRecvError},
};
use tracing::{trace, warn};

use super::{
    AbortOnDrop,
    outbound::{Outbound, OutboundQueue},
};
use crate::{
    codec::{self, CodecContext, Decoded},
    fsm::Event,
    message::Message,
};

/// Writes are flushed at this size (a full-table transfer writes ~1 MB at a time).
const WRITE_BATCH: usize = 1 << 20;
/// NLRIs taken from the outbound queue per encoding step.
const UPDATE_CHUNK: usize = 4096;
/// Read buffer growth step.
const READ_CHUNK: usize = 256 * 1024;
/// A NOTIFICATION before a close gets this long to go out (RFC 9687 §4.3: best effort).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a connection reports to its peer task, tagged with the connection's id.
#[derive(Debug)]
pub enum ConnEvent {
    /// Decoded events of one read, in order.
    Events(Vec<Event>),
    /// A write went out.
    SendProgress,
    /// The connection ended (EOF, error, or a decode error already reported).
    Closed(String),
}

pub type Tagged = (u64, ConnEvent);

pub enum WriterCommand {
    Message(Box<Message>),
    /// The session is established: send what the RIB queues here.
    Outbound(Arc<OutboundQueue>),
    /// The negotiated context (after the OPEN exchange).
    Context(CodecContext),
    /// Flush (with a short grace) and close.
    Close,
}

/// The peer task's side of a live connection; dropping it aborts both tasks.
pub struct Connection {
    pub id: u64,
    pub outgoing: bool,
    pub local: Option<std::net::SocketAddr>,
    pub writer: mpsc::UnboundedSender<WriterCommand>,
    /// Unblocks the reader after an OPEN.
    pub reader_context: mpsc::UnboundedSender<CodecContext>,
    _reader: AbortOnDrop,
    _writer: AbortOnDrop,
}

impl Connection {
    pub fn start(
        id: u64,
        stream: TcpStream,
        outgoing: bool,
        peer: String,
        events: mpsc::Sender<Tagged>,
        writer_events: mpsc::UnboundedSender<Tagged>,
    ) -> Connection {
        let local = stream.local_addr().ok();
        let (read_half, write_half) = stream.into_split();
        let (writer, writer_rx) = mpsc::unbounded_channel();
        let (reader_context, context_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(id, read_half, peer.clone(), events, context_rx));
        let writer_task = tokio::spawn(write_loop(id, write_half, peer, writer_rx, writer_events));
        Connection {
            id,
            outgoing,
            local,
            writer,
            reader_context,
            _reader: AbortOnDrop::new(reader),
            _writer: AbortOnDrop::new(writer_task),
        }
    }

    pub fn send(&self, command: WriterCommand) {
        let _ = self.writer.send(command);
    }

    /// Asks the writer to flush and close; the reader stops with the `Connection`.
    pub fn close(self) {
        let _ = self.writer.send(WriterCommand::Close);
        // The writer finishes on its own (bounded by CLOSE_GRACE); the reader is aborted.
        let Connection { _writer, .. } = self;
        _writer.detach();
    }
}

async fn read_loop(
    id: u64,
    mut socket: OwnedReadHalf,
    peer: String,
    events: mpsc::Sender<Tagged>,
    mut context_rx: mpsc::UnboundedReceiver<CodecContext>,
) {
    let mut context = CodecContext::default();
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK);
    let mut start = 0;
    let reason = 'outer: loop {
        if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
            buffer.drain(..start);
            start = 0;
            buffer.reserve(READ_CHUNK);
        }
        match socket.read_buf(&mut buffer).await {
            Ok(0) => break "connection closed by the peer".to_string(),
            Ok(_) => {}
            Err(error) => break format!("read: {error}"),
        }
        let mut batch = Vec::new();
        loop {
            match codec::decode_message(&buffer[start..], &context) {
                Ok(None) => break,
                Ok(Some((decoded, used))) => {
                    start += used;
                    let event = match decoded {
                        Decoded::Message(message) => {
                            trace!(%peer, ?message, "received");
                            Event::Message(message)
                        }
                        Decoded::TreatAsWithdraw { update, reason } => {
                            warn!(%peer, %reason, "UPDATE treated as withdraw (RFC 7606)");
                            Event::TreatAsWithdraw(update)
                        }
                    };
                    let is_open = matches!(event, Event::Message(Message::Open(_)));
                    batch.push(event);
                    if is_open {
                        if events
                            .send((id, ConnEvent::Events(std::mem::take(&mut batch))))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        match context_rx.recv().await {
                            Some(negotiated) => context = negotiated,
                            None => return,
                        }
                    }
                }
                Err(error) => {
                    warn!(%peer, %error, "cannot decode a message");
                    batch.push(Event::DecodeError(error.notification));
                    let _ = events.send((id, ConnEvent::Events(batch))).await;
                    break 'outer format!("decode error: {}", error.reason);
                }
            }
        }
        if start == buffer.len() {
            buffer.clear();
            start = 0;
        }
        if !batch.is_empty() && events.send((id, ConnEvent::Events(batch))).await.is_err() {
            return;
        }
    };
    let _ = events.send((id, ConnEvent::Closed(reason))).await;
}

/// What the writer holds between writes.
struct Writer {
    peer: String,
    context: CodecContext,
    buffer: Vec<u8>,
    queue: Option<Arc<OutboundQueue>>,
    /// A batch taken from the queue, not all encoded yet.
    sending: Option<Outbound>,
    closing: bool,
}

impl Writer {
    fn apply(&mut self, command: WriterCommand) {
        match command {
            WriterCommand::Message(message) => {
                trace!(peer = %self.peer, ?message, "sending");
                if let Err(error) =
                    codec::encode_message_into(message.as_ref(), &self.context, &mut self.buffer)
                {
                    warn!(peer = %self.peer, %error, "cannot encode a message");
                }
            }
            WriterCommand::Outbound(queue) => {
                self.queue = Some(queue);
                self.sending = None;
            }
            WriterCommand::Context(negotiated) => self.context = negotiated,
            WriterCommand::Close => self.closing = true,
        }
    }

    /// Encodes queued RIB updates until the buffer holds a write's worth or none are left.
    fn fill_updates(&mut self) {
        while self.buffer.len() < WRITE_BATCH {
            if self.sending.is_none() {
                self.sending = self.queue.as_ref().and_then(|queue| queue.take());
            }
            let Some(sending) = &mut self.sending else {
                return;
            };
            let updates = sending.next_updates(UPDATE_CHUNK);
            if updates.is_empty() {
                self.sending = None;
                continue;
            }
            for update in &updates {
                trace!(peer = %self.peer, ?update, "sending");
                match codec::encode_update_split(update, &self.context) {
                    Ok(messages) => messages
                        .iter()
                        .for_each(|message| self.buffer.extend_from_slice(message)),
                    Err(error) => {
                        warn!(peer = %self.peer, %error, "cannot encode an UPDATE; skipped")
                    }
                }
            }
        }
    }
}

/// Completes when the RIB queued something (never without a queue).
async fn queue_ready(queue: Option<&OutboundQueue>) {
    match queue {
        Some(queue) => queue.ready().await,
        None => std::future::pending().await,
    }
}

async fn write_loop(
    id: u64,
    mut socket: OwnedWriteHalf,
    peer: String,
    mut commands: mpsc::UnboundedReceiver<WriterCommand>,
    events: mpsc::UnboundedSender<Tagged>,
) {
    let mut writer = Writer {
        peer,
        context: CodecContext::default(),
        buffer: Vec::with_capacity(64 * 1024),
        queue: None,
        sending: None,
        closing: false,
    };
    loop {
        // Messages (KEEPALIVE, NOTIFICATION, ...) go ahead of queued updates.
        while !writer.closing && writer.buffer.len() < WRITE_BATCH {
            match commands.try_recv() {
                Ok(command) => writer.apply(command),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
        if writer.closing {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                let _ = socket.write_all(&writer.buffer).await;
                let _ = socket.shutdown().await;
            })
            .await;
            return;
        }
        writer.fill_updates();
        if !writer.buffer.is_empty() {
            if let Err(error) = socket.write_all(&writer.buffer).await {
                let _ = events.send((id, ConnEvent::Closed(format!("write: {error}"))));
                return;
            }
            writer.buffer.clear();
            let _ = events.send((id, ConnEvent::SendProgress));
            continue;
        }
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => writer.apply(command),
                None => return,
            },
            () = queue_ready(writer.queue.as_deref()) => {}
        }
    }
}
