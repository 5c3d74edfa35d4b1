//! Sysctls under /proc/sys, behind a narrow trait. (stub)
