//! Netlink connections bound to another network namespace (a pod's). Does I/O: opens the
//! namespace file and a netlink socket on a dedicated OS thread that entered the namespace.
//!
//! A netlink socket belongs to the namespace of the thread that created it, so the socket is
//! made on a fresh `std::thread` after `setns(CLONE_NEWNET)`; that thread then exits and the
//! connection is driven by the caller's tokio runtime. No tokio worker ever calls setns.

use std::{fs::File, io, path::Path, thread};

use nix::{errno::Errno, sched::CloneFlags};
use rtnetlink::Handle;
use tokio::sync::oneshot;

use crate::netlink::NetlinkError;

/// Why a namespace could not be entered.
#[derive(Debug)]
pub(crate) enum NamespaceOpenError {
    /// The path does not exist or is not a network namespace: the pod is gone.
    Gone,
    Failed(NetlinkError),
}

impl NamespaceOpenError {
    /// Turns "gone" into an error too, for operations that need the namespace.
    pub(crate) fn into_error(self, path: &Path) -> NetlinkError {
        match self {
            Self::Gone => NetlinkError::Namespace {
                path: path.display().to_string(),
                reason: "does not exist or is not a network namespace".to_string(),
            },
            Self::Failed(error) => error,
        }
    }
}

/// Opens the namespace file; a missing path is `Gone`.
pub(crate) fn open_netns(path: &Path) -> Result<File, NamespaceOpenError> {
    File::open(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => NamespaceOpenError::Gone,
        _ => NamespaceOpenError::Failed(namespace_error(path, &error.to_string())),
    })
}

/// An rtnetlink handle whose socket lives in the namespace at `path`; its connection is spawned
/// on the current tokio runtime and ends when the last clone of the handle is dropped.
pub(crate) async fn connect_in_netns(path: &Path) -> Result<Handle, NamespaceOpenError> {
    let netns = open_netns(path)?;
    let runtime = tokio::runtime::Handle::current();
    let (sender, receiver) = oneshot::channel();
    let display = path.display().to_string();
    let spawned = thread::Builder::new()
        .name("manul-netns".to_string())
        .spawn(move || {
            let result = open_on_this_thread(netns, &runtime, &display);
            // The receiver only goes away when the caller was cancelled.
            let _ = sender.send(result);
        });
    if let Err(error) = spawned {
        return Err(NamespaceOpenError::Failed(namespace_error(
            path,
            &format!("spawning the namespace thread: {error}"),
        )));
    }
    let (connection, handle) = receiver.await.map_err(|_| {
        NamespaceOpenError::Failed(namespace_error(path, "namespace thread ended early"))
    })??;
    tokio::spawn(connection);
    Ok(handle)
}

type Connection = rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>;

/// Runs on the dedicated thread: enter the namespace, then create the socket there.
fn open_on_this_thread(
    netns: File,
    runtime: &tokio::runtime::Handle,
    path: &str,
) -> Result<(Connection, Handle), NamespaceOpenError> {
    match nix::sched::setns(&netns, CloneFlags::CLONE_NEWNET) {
        Ok(()) => {}
        // EINVAL: the file is not a network namespace (e.g. an unmounted /run/netns entry).
        Err(Errno::EINVAL) => return Err(NamespaceOpenError::Gone),
        Err(errno) => {
            return Err(NamespaceOpenError::Failed(NetlinkError::Namespace {
                path: path.to_string(),
                reason: format!("setns: {errno}"),
            }));
        }
    }
    // The tokio socket registers with the reactor when it is created.
    let _entered = runtime.enter();
    let (connection, handle, _messages) = rtnetlink::new_connection().map_err(|error| {
        NamespaceOpenError::Failed(NetlinkError::Namespace {
            path: path.to_string(),
            reason: format!("netlink socket: {error}"),
        })
    })?;
    Ok((connection, handle))
}

fn namespace_error(path: &Path, reason: &str) -> NetlinkError {
    NetlinkError::Namespace {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}
