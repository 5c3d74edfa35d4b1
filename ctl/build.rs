//! Records the git commit manulctl is built from (`git rev-parse --short HEAD`) as
//! MANUL_GIT_COMMIT for `manulctl version`; "unknown" without git or outside a checkout. A
//! MANUL_GIT_COMMIT set in the build's environment (a container build without .git) wins.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MANUL_GIT_COMMIT");
    // The checkout's HEAD moves with every commit (in a worktree .git is a file; both work).
    println!("cargo:rerun-if-changed=../.git/HEAD");
    let commit = std::env::var("MANUL_GIT_COMMIT").ok().unwrap_or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
            .filter(|commit| !commit.is_empty())
            .unwrap_or_else(|| "unknown".to_string())
    });
    println!("cargo:rustc-env=MANUL_GIT_COMMIT={commit}");
}
