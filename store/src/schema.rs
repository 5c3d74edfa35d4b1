//! JSON schemas for record fields whose Rust types schemars describes in a way a CRD cannot
//! use (ipnet's `IpNet` is a `oneOf` of two string schemas, not structural). Pure, no I/O.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An IPv4 or IPv6 network in CIDR notation.
pub fn cidr(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "description": "An IPv4 or IPv6 network in CIDR notation (10.244.0.0/16, fd00::/48)."
    })
}

/// A map from names to networks in CIDR notation.
pub fn cidr_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {"type": "string"}
    })
}
