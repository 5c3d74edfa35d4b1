//! manul-bgpd: a BGP-4 speaker. Messages are values (`message`), encoded and decoded by
//! `codec`, driven per session by the sans-IO state machine in `fsm`, and selected in `rib`.

pub mod codec;
pub mod config;
pub mod daemon;
pub mod fsm;
pub mod message;
pub mod prefix_hash;
pub mod rib;
pub mod sys;
