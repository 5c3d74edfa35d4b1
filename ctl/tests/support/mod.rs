//! What manulctl's binary tests share: a datastore per test (an embedded store in a temporary
//! file, or a real etcd member started on loopback by manul-store's fixture and killed on
//! Drop), the `manulctl` command pointed at it and isolated from the machine's config, and a
//! dump of the whole store to prove that a refused command changed nothing.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use manul_store::{Kind, open_datastore, testing::etcd::EtcdCluster};
use tempfile::TempDir;

/// A datastore for one test.
pub struct Fixture {
    pub url: String,
    config: PathBuf,
    pub dir: TempDir,
    _etcd: Option<EtcdCluster>,
}

impl Fixture {
    /// An embedded store in a fresh temporary file.
    pub fn embedded() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("embedded://{}", dir.path().join("store.redb").display());
        Fixture::new(url, dir, None)
    }

    /// A real etcd member on 127.0.0.1; fails with "install etcd-server" without etcd.
    pub fn etcd() -> Fixture {
        let etcd = EtcdCluster::start_one().unwrap_or_else(|error| panic!("{error}"));
        let dir = tempfile::tempdir().expect("a temporary directory");
        Fixture::new(etcd.url(), dir, Some(etcd))
    }

    fn new(url: String, dir: TempDir, etcd: Option<EtcdCluster>) -> Fixture {
        let config = dir.path().join("manulctl.yaml");
        std::fs::write(&config, "").expect("write an empty config file");
        Fixture {
            url,
            config,
            dir,
            _etcd: etcd,
        }
    }

    /// `manulctl --datastore URL --config <empty file>`, with the environment's MANUL_*
    /// settings removed.
    pub fn ctl(&self) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::new(ctl_binary());
        for variable in [
            "MANUL_DATASTORE",
            "MANULCTL_CONFIG",
            "MANUL_AGENT_SOCKET",
            "MANUL_BGPD_SOCKET",
            "MANUL_ETCD_PREFIX",
            "ETCD_CA_CERT_FILE",
            "ETCD_CERT_FILE",
            "ETCD_KEY_FILE",
        ] {
            command.env_remove(variable);
        }
        command
            .arg("--datastore")
            .arg(&self.url)
            .arg("--config")
            .arg(&self.config);
        command
    }

    /// Runs manulctl with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.ctl().args(args).output().expect("run manulctl")
    }

    /// Runs manulctl with `args` and `stdin`.
    pub fn run_with_input(&self, args: &[&str], stdin: &str) -> Output {
        self.ctl()
            .args(args)
            .write_stdin(stdin.as_bytes().to_vec())
            .output()
            .expect("run manulctl")
    }

    /// Runs manulctl and fails the test, with its output, unless it succeeds; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "manulctl {args:?} failed:\n{}",
            show(&output)
        );
        stdout(&output)
    }

    /// `apply -f PATH`, which must succeed.
    pub fn apply(&self, path: &Path) {
        self.ok(&["apply", "-f", path.to_str().expect("a UTF-8 path")]);
    }

    /// Creates a record with exactly these bytes, past manulctl (as an older version wrote
    /// it).
    pub fn put_raw(&self, kind: Kind, name: &str, value: &str) {
        let (url, name, value) = (
            self.url.clone(),
            name.to_string(),
            value.as_bytes().to_vec(),
        );
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async move {
                let store = open_datastore(&url).expect("open the store");
                store.create(kind, &name, value).await.expect("create");
            });
    }

    /// Every stored object of every kind with its revision, and each listing's revision:
    /// any write changes it.
    pub fn dump(&self) -> String {
        let url = self.url.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let store = open_datastore(&url).expect("open the store");
            let mut dump = String::new();
            for kind in Kind::ALL {
                let listing = store.list(kind, "").await.expect("list");
                dump.push_str(&format!("{kind} at {}\n", listing.revision));
                for item in listing.items {
                    dump.push_str(&format!(
                        "  {} @{} {}\n",
                        item.name,
                        item.revision,
                        String::from_utf8_lossy(&item.value)
                    ));
                }
            }
            dump
        })
    }
}

pub fn ctl_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_manulctl"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn show(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    )
}

/// A file of the test data directory (ctl/tests/...).
pub fn data(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(relative)
}
