//! The `manul` CNI plugin: config and environment parsing, version negotiation, result and
//! error JSON. (Owned by the CNI plugin work; stub.)
