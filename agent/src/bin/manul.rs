//! manul: the CNI plugin binary. (stub)
fn main() {}
