//! manul-agent: the per-node daemon. (stub)
fn main() {}
