//! Unit tests of the RIB (no I/O).
