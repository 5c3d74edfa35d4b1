//! The manul-bgpd daemon: tasks around the sans-IO `fsm`, `codec` and `rib`, a gRPC API on a
//! Unix socket, and the run loop of the binary. Does I/O (sockets, tasks, threads).
//!
//! Tasks and the channels between them:
//!
//! ```text
//!    gRPC (bgpd.proto, Unix socket)      config file (seed)
//!                 │                             │
//!                 ▼                             ▼
//!          ┌─────────────────────────────────────────┐
//!          │ Speaker (tokio Mutex): global settings, │  owns every handle below:
//!          │ peers by address, originated prefixes   │  dropping one aborts its task
//!          └─────────────────────────────────────────┘
//!             │ spawns        │ spawns (Nx)         │ spawns (1x)
//!             ▼               ▼                     ▼
//!   listener (1x per    peer task (1x per    ┌──────────────────────┐
//!   listen address)     peer): Session(s),   │ RIB actor (OS thread)│
//!   accept ──Accepted──▶ timers, GR timer ───│ owns rib::Rib        │
//!   (unknown: held 3 s)  │      Receive(batch│), PeerUp/Down,       │
//!                        │      StaleTimeout,│ RouteRefresh         │
//!                        │                   │                      │
//!                        │   OutboundQueue ◀─│ RibOutput::Send      │
//!                        │   (per session,   │                      │
//!                        │   per prefix)     │ BestChanged/Withdrawn│──▶ Watcher (dirty
//!            ┌───────────┴───────────┐  │    └──────────────────────┘    prefixes) ◀─ next
//!            ▼                       ▼  ▼                                  chunk ─ WatchBest-
//!   reader (1x per conn):    writer (1x per conn):                         Paths stream (1x)
//!   bytes → codec → Events   Messages, then queued updates → codec → 1 MB writes
//!   (bounded: back-pressure)  → SendProgress
//!   connect attempt (0/1x per peer) ──TcpStream──▶ peer task
//! ```
//!
//! Flow control: the reader's channel to its peer task is bounded (16 reads), and received
//! UPDATEs go to the RIB in batches that each hold one of 64 permits. The RIB never waits on a
//! consumer (so there is no cycle), and no consumer can make it hold more than the table: a
//! session's pending Adj-RIB-Out changes are coalesced per prefix in its `OutboundQueue`
//! (drained by the writer when the socket takes more), and a watcher has a queue of dirty
//! prefixes (a mark bit in the RIB's table entry) resolved against the RIB when it asks for its
//! next chunk (`watch`).

pub mod api;
mod api_convert;
#[cfg(test)]
mod api_tests;
mod best_wire;
mod connection;
pub mod convert;
mod held;
mod outbound;
mod peer;
mod peer_events;
mod rib_actor;
#[cfg(test)]
mod rib_actor_tests;
mod speaker;
pub mod transport;
mod watch;

use tokio::task::JoinHandle;

pub use peer::PeerStatus;
pub use rib_actor::{RibActor, RibHandle, WatchHandle};
pub use speaker::{PeerReport, Speaker, SpeakerError};
pub use watch::{BestEvent, WatchChunk};

/// A task aborted when this is dropped (pattern 6 of STYLE.md).
pub struct AbortOnDrop(Option<JoinHandle<()>>);

impl AbortOnDrop {
    pub fn new(task: JoinHandle<()>) -> AbortOnDrop {
        AbortOnDrop(Some(task))
    }

    /// Lets the task run to its end on its own.
    pub fn detach(mut self) {
        self.0 = None;
    }

    /// The task, no longer aborted on drop.
    pub fn take(&mut self) -> Option<JoinHandle<()>> {
        self.0.take()
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}
