//! manul-cni-bench (stub).
fn main() {}
