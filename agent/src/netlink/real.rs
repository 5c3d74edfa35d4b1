//! The rtnetlink implementation of `Netlink`. (stub)
