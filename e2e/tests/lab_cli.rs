//! `manul-lab up`, `status` and `down` as separate invocations of the binary: `up` returns with
//! the lab running and held by a background process, `status` (another process) prints the same
//! nodes, sessions and matrix, a second `up` is refused, `down` removes every namespace and
//! process. Needs root, etcd and BIRD. A guard runs `down` if the test fails half way.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result};

struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        if let Ok(lab) = manul_e2e::bin_path("manul-lab") {
            let _ = Command::new(lab)
                .arg("down")
                .arg("--state-dir")
                .arg(&self.0)
                .output();
        }
    }
}

fn lab(args: &[&str], state_dir: &std::path::Path) -> Result<(i32, String)> {
    let output = Command::new(manul_e2e::bin_path("manul-lab")?)
        .args(args)
        .arg("--state-dir")
        .arg(state_dir)
        .output()
        .context("running manul-lab")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.code().unwrap_or(-1), text))
}

fn namespaces_of(pid: u32) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| name.starts_with(&format!("manul-lab-{pid}-")))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn up_status_and_down_are_separate_invocations() -> Result<()> {
    manul_e2e::require_root()?;
    manul_e2e::require_programs(&manul_e2e::lab::PROGRAMS)?;
    let state = tempfile::tempdir()?;
    let _down = Down(state.path().to_path_buf());

    let (code, text) = lab(&["up", "--nodes", "2", "--tor", "off"], state.path())?;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("16 of 16 paths ok"),
        "pod pairs and the outside through NAT: {text}"
    );
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path().join("state.json"))?)?;
    let holder = stored["holder_pid"].as_u64().context("holder_pid")? as u32;
    assert!(
        PathBuf::from(format!("/proc/{holder}")).exists(),
        "up returned but nobody holds the lab"
    );
    assert_eq!(
        namespaces_of(holder).len(),
        2 + 2 + 4,
        "tor, outside, nodes, pods"
    );

    let (code, text) = lab(&["status"], state.path())?;
    assert_eq!(code, 0, "{text}");
    for expected in [
        "n0     10.80.1.10",
        "node-n1",
        "Established",
        "n0 → n1",
        "16 of 16 paths ok",
    ] {
        assert!(
            text.contains(expected),
            "status lacks {expected:?}:\n{text}"
        );
    }

    let (code, text) = lab(&["up"], state.path())?;
    assert_eq!(code, 2, "a second up must be refused: {text}");
    assert!(text.contains("a lab is up already"), "{text}");

    let (code, text) = lab(&["down"], state.path())?;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("lab removed"), "{text}");
    assert!(
        !PathBuf::from(format!("/proc/{holder}")).exists(),
        "the holder still runs"
    );
    assert_eq!(namespaces_of(holder), Vec::<String>::new());
    assert!(!state.path().join("state.json").exists());

    let (code, text) = lab(&["status"], state.path())?;
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no lab is up"), "{text}");
    Ok(())
}
