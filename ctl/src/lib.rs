//! manulctl's library: the calicoctl-style command line over manul's datastore. The binary
//! (`main.rs`) only parses flags and prints errors; everything else is here so that it can be
//! tested without a process.
//!
//! Modules: `cli` (the clap definitions), `config` (flags, environment and the config file),
//! `connect` (the datastore directly, or through the agent's socket),
//! `kinds` (resource kinds and their short names), `fields` (field-naming input errors and
//! the decoding helpers that produce them), `document` (kubernetes-shaped documents),
//! `input` (reading YAML/JSON files with several documents), `resources/` (one module per
//! kind: document <-> store record, validation, table columns), `object` (the stored
//! objects of every kind as one type), `store_access` (reads and compare-and-swap writes
//! through the Datastore trait and manul-ipam), `merge_patch` (RFC 7386), `output` (tables,
//! YAML, JSON), `verbs/` (one module per group of commands), `app` (dispatch).

pub mod app;
pub mod cli;
pub mod config;
pub mod connect;
pub mod document;
pub mod error;
pub mod fields;
pub mod identity;
pub mod input;
pub mod kinds;
pub mod merge_patch;
pub mod object;
pub mod output;
pub mod resources;
pub mod store_access;
pub use manul_store::timestamp;
pub mod verbs;

pub use error::CtlError;
