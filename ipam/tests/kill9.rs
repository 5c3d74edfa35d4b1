//! Kills the ipam_stress binary with SIGKILL at several moments (after a varying number of
//! allocations, seen on its stdout) and checks after each kill that the reopened store has no
//! IPAM problem: the write order leaves only leftovers. Finally releases everything.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use manul_ipam::Ipam;
use manul_store::{Datastore, DatastoreExt, IpamHandle, embedded::EmbeddedStore};

const DEADLINE: Duration = Duration::from_secs(120);

/// Runs the stress binary until it has printed `lines` allocations, then SIGKILLs it.
fn run_and_kill(store: &std::path::Path, run: &str, lines: usize) -> Result<()> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ipam_stress"))
        .arg(store)
        .arg(run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting ipam_stress")?;
    let stdout = child.stdout.take().context("stdout")?;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut seen = 0;
    while seen < lines {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match receiver.recv_timeout(left) {
            Ok(Ok(line)) if line.starts_with("allocated ") => seen += 1,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                let output = child.wait_with_output()?;
                bail!(
                    "ipam_stress printed {seen} of {lines} lines before it stopped or the deadline: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
    child.kill().context("SIGKILL")?; // std sends SIGKILL on Unix
    let status = child.wait()?;
    anyhow::ensure!(!status.success(), "ipam_stress exited by itself: {status}");
    Ok(())
}

fn check(path: &std::path::Path) -> Result<(Arc<dyn Datastore>, manul_ipam::CheckReport)> {
    let store: Arc<dyn Datastore> = Arc::new(EmbeddedStore::open(path)?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(Ipam::new(store.clone()).check())?;
    Ok((store, report))
}

#[test]
fn sigkill_at_any_moment_leaves_no_problem() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    for (round, lines) in [3usize, 17, 40, 71, 120].into_iter().enumerate() {
        run_and_kill(&path, &format!("r{round}"), lines)?;
        let (_store, report) = check(&path)?;
        assert!(
            report.problems.is_empty(),
            "after kill {round}: {:#?}",
            report.problems
        );
        assert!(report.allocated > 0, "round {round}: nothing allocated?");
        eprintln!(
            "kill {round} after {lines} lines: {} allocated, {} blocks, {} handles, leftovers {:?}",
            report.allocated, report.blocks, report.handles, report.leftovers
        );
    }

    // Everything the killed runs left can still be released.
    let store: Arc<dyn Datastore> = Arc::new(EmbeddedStore::open(&path)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let ipam = Ipam::new(store.clone());
        for handle in store.list_resources::<IpamHandle>("").await? {
            ipam.release_by_handle(&handle.value.handle_id).await?;
        }
        let report = ipam.check().await?;
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!((report.allocated, report.handles), (0, 0));
        anyhow::Ok(())
    })
}
