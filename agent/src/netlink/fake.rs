//! A recording fake of `Netlink` for unit tests. (stub)
