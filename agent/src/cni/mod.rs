//! The `manul` CNI plugin: environment and config parsing, version negotiation, result and
//! error JSON (all pure), and the forwarding of each command to manul-agent over gRPC
//! (`plugin::execute`, the only I/O).
//!
//! The plugin is thin: it validates its input, forwards the request to the agent on its Unix
//! socket, and prints the agent's answer as a CNI result or a CNI error (see `error` for the
//! codes). Supported: CNI 0.3.1, 0.4.0, 1.0.0 and 1.1.0; ADD, DEL, CHECK, STATUS, GC, VERSION.

pub mod addresses;
pub mod config;
pub mod environment;
pub mod error;
pub mod plugin;
pub mod result;
pub mod version;

pub use config::NetConf;
pub use environment::{Command, EnvVars, Environment};
pub use error::{CniError, ErrorKind};
pub use plugin::{Output, run};
pub use version::CniVersion;
