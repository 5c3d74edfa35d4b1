//! Real etcd members for tests and the lab: one member or a cluster on 127.0.0.1 with free
//! ports and temporary data directories, killed (SIGKILL) and restarted on demand, killed on
//! Drop. Starts processes and polls their /health over TCP.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::etcd::{EtcdConfig, EtcdTls};

mod certificates;

/// How long a member may take to become healthy (it takes under a second here).
const HEALTHY_WITHIN: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum EtcdFixtureError {
    #[error(
        "etcd is not on PATH: install etcd-server (apt-get install -y etcd-server etcd-client)"
    )]
    NotInstalled,
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{command} failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("etcd member {name} did not become healthy within {HEALTHY_WITHIN:?}; its log:\n{log}")]
    Unhealthy { name: String, log: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EtcdFixtureError {
    let what = what.into();
    move |source| EtcdFixtureError::Io { what, source }
}

/// Fails with "install etcd-server" unless `etcd` is on PATH.
pub fn require_etcd() -> Result<(), EtcdFixtureError> {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        Ok(())
    } else {
        Err(EtcdFixtureError::NotInstalled)
    }
}

/// One member: its ports, data directory and (while it runs) its process.
#[derive(Debug)]
pub struct EtcdMember {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// Plain-http port of /health and /metrics (also when clients speak TLS).
    pub metrics_port: u16,
    /// The member's certificate and key, and the CA its clients must present certificates of.
    tls: Option<ServerTls>,
    data_dir: PathBuf,
    log: PathBuf,
    initial_cluster: String,
    child: Option<Child>,
}

impl EtcdMember {
    /// `127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn spawn(&mut self) -> Result<(), EtcdFixtureError> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let metrics = format!("http://127.0.0.1:{}", self.metrics_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io(format!("open {}", self.log.display())))?;
        let log_err = log.try_clone().map_err(io("clone a log file"))?;
        let mut command = Command::new("etcd");
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.cert_file)
                .arg("--key-file")
                .arg(&tls.key_file)
                .arg("--trusted-ca-file")
                .arg(&tls.ca_file)
                .arg("--client-cert-auth");
        }
        let child = command
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-metrics-urls", &metrics])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "manul-test"])
            // Fast elections, so a killed leader is replaced in well under a second.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io(format!("start etcd member {}", self.name)))?;
        self.child = Some(child);
        Ok(())
    }

    /// True when the member answers /health (on its metrics port) with a leader.
    pub fn is_healthy(&self) -> bool {
        let address = ([127, 0, 0, 1], self.metrics_port).into();
        let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.contains("\"health\":\"true\"")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A cluster of members on loopback; every member is killed on Drop.
#[derive(Debug)]
pub struct EtcdCluster {
    pub members: Vec<EtcdMember>,
    /// The client TLS files, when the members require TLS with client certificates.
    client_tls: Option<EtcdTls>,
    _dir: tempfile::TempDir,
}

#[derive(Clone, Debug)]
struct ServerTls {
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

fn free_ports(count: usize) -> Result<Vec<u16>, EtcdFixtureError> {
    // Hold every listener until all ports are chosen, so no port is handed out twice.
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(io("bind a free port")))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|listener| {
            listener
                .local_addr()
                .map(|address| address.port())
                .map_err(io("read a bound port"))
        })
        .collect()
}

impl EtcdCluster {
    /// Starts `size` members speaking plain http and waits until each is healthy.
    pub fn start(size: usize) -> Result<EtcdCluster, EtcdFixtureError> {
        EtcdCluster::start_with(size, false)
    }

    /// Starts `size` members that require TLS with a client certificate (made with the
    /// `openssl` command: a CA, a certificate for 127.0.0.1, a client certificate).
    pub fn start_tls(size: usize) -> Result<EtcdCluster, EtcdFixtureError> {
        EtcdCluster::start_with(size, true)
    }

    fn start_with(size: usize, tls: bool) -> Result<EtcdCluster, EtcdFixtureError> {
        require_etcd()?;
        let dir = tempfile::tempdir().map_err(io("create a temporary directory"))?;
        let (server_tls, client_tls) = if tls {
            let (server, client) = certificates::make(dir.path())?;
            (Some(server), Some(client))
        } else {
            (None, None)
        };
        let ports = free_ports(3 * size)?;
        let initial_cluster = (0..size)
            .map(|i| format!("m{i}=http://127.0.0.1:{}", ports[3 * i + 1]))
            .collect::<Vec<_>>()
            .join(",");
        let members = (0..size)
            .map(|i| EtcdMember {
                name: format!("m{i}"),
                client_port: ports[3 * i],
                peer_port: ports[3 * i + 1],
                metrics_port: ports[3 * i + 2],
                tls: server_tls.clone(),
                data_dir: dir.path().join(format!("m{i}.etcd")),
                log: dir.path().join(format!("m{i}.log")),
                initial_cluster: initial_cluster.clone(),
                child: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            members,
            client_tls,
            _dir: dir,
        };
        for member in &mut cluster.members {
            member.spawn()?;
        }
        for index in 0..size {
            cluster.wait_healthy(index)?;
        }
        Ok(cluster)
    }

    /// The TLS files a client needs (CA, client certificate and key), for a TLS cluster.
    pub fn client_tls(&self) -> Option<&EtcdTls> {
        self.client_tls.as_ref()
    }

    /// One member.
    pub fn start_one() -> Result<EtcdCluster, EtcdFixtureError> {
        EtcdCluster::start(1)
    }

    /// Every member's `host:port`.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdMember::endpoint).collect()
    }

    /// `etcd://host:port,...` naming every member.
    pub fn url(&self) -> String {
        format!("etcd://{}", self.endpoints().join(","))
    }

    /// A store configuration for every member with its own key prefix (and the client TLS
    /// files of a TLS cluster), retrying for `retry_for` (tests that kill members keep it
    /// long, tests of failures short).
    pub fn config(&self, prefix: &str, retry_for: Duration) -> EtcdConfig {
        EtcdConfig::from_url(&self.url())
            .expect("the fixture's URL parses")
            .with_prefix(prefix)
            .with_tls(self.client_tls.clone().unwrap_or_default())
            .with_retry_for(retry_for)
    }

    /// SIGKILLs member `index` (its data directory stays).
    pub fn kill(&mut self, index: usize) {
        self.members[index].kill();
    }

    /// Starts member `index` again on its ports and data directory, and waits until it is
    /// healthy.
    pub fn restart(&mut self, index: usize) -> Result<(), EtcdFixtureError> {
        self.members[index].kill();
        self.members[index].spawn()?;
        self.wait_healthy(index)
    }

    /// Polls member `index` until it reports health, with a deadline.
    pub fn wait_healthy(&self, index: usize) -> Result<(), EtcdFixtureError> {
        let member = &self.members[index];
        let deadline = Instant::now() + HEALTHY_WITHIN;
        while Instant::now() < deadline {
            if member.is_healthy() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(EtcdFixtureError::Unhealthy {
            name: member.name.clone(),
            log: member.log_text(),
        })
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.kill();
        }
    }
}
