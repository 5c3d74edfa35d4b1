//! Sysctls under /proc/sys behind a narrow trait: `ProcSysctl` reads and writes the files (I/O),
//! `FakeSysctl` keeps them in memory for unit tests, and `host_interface_sysctls` is the pure
//! list of what each host-side cali* interface needs.
//!
//! Keys are slash paths relative to /proc/sys ("net/ipv4/conf/cali1234/proxy_arp"), never the
//! dotted notation: interface names may contain dots (vxlan.calico). /proc/sys/net shows the
//! network namespace of the thread that opens the file, so `ProcSysctl` acts on the namespace
//! of whichever thread calls it.

use std::{
    collections::BTreeMap,
    io,
    path::{Component, Path, PathBuf},
    sync::Mutex,
};

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("sysctl {key}: invalid key: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("sysctl {key}: does not exist")]
    NotFound { key: String },
    #[error("sysctl {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: io::Error,
    },
}

/// Reads and writes sysctls by slash path under /proc/sys.
pub trait Sysctl: Send + Sync {
    /// The current value (trailing newline removed), or None when the key does not exist.
    fn get(&self, key: &str) -> Result<Option<String>, SysctlError>;

    /// Sets the value when it differs; returns whether it was written. A missing key is
    /// `SysctlError::NotFound` (sysctls cannot be created).
    fn set(&self, key: &str, value: &str) -> Result<bool, SysctlError>;
}

/// The sysctls of a host-side pod interface (DESIGN.md, "The packet path").
pub fn host_interface_sysctls(ifname: &str, ipv6: bool) -> Vec<(String, String)> {
    let mut list = vec![
        (format!("net/ipv4/conf/{ifname}/proxy_arp"), "1"),
        (format!("net/ipv4/neigh/{ifname}/proxy_delay"), "0"),
        (format!("net/ipv4/conf/{ifname}/forwarding"), "1"),
        (format!("net/ipv4/conf/{ifname}/route_localnet"), "1"),
    ];
    if ipv6 {
        list.extend([
            (format!("net/ipv6/conf/{ifname}/proxy_ndp"), "1"),
            (format!("net/ipv6/conf/{ifname}/accept_ra"), "0"),
            (format!("net/ipv6/conf/{ifname}/forwarding"), "1"),
        ]);
    }
    list.into_iter()
        .map(|(key, value)| (key, value.to_string()))
        .collect()
}

/// The node-wide sysctls of a routed node: IPv4 forwarding always; IPv6 forwarding when IPv6
/// pools are in use, so that IPv6 pods are routable off the node. (With IPv6 forwarding on,
/// the kernel ignores router advertisements on interfaces whose accept_ra is 1; a host that
/// takes its IPv6 default route from RAs needs accept_ra=2 on its uplink.)
pub fn node_sysctls(ipv6: bool) -> Vec<(String, String)> {
    let mut list = vec![("net/ipv4/ip_forward".to_string(), "1".to_string())];
    if ipv6 {
        list.push(("net/ipv6/conf/all/forwarding".to_string(), "1".to_string()));
    }
    list
}

/// Rejects keys that could leave the sysctl tree or that use the dotted notation.
fn validate(key: &str) -> Result<(), SysctlError> {
    let invalid = |reason| {
        Err(SysctlError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("empty");
    }
    if !key.contains('/') {
        return invalid("not a slash path (dotted notation is ambiguous with dotted interfaces)");
    }
    if key.split('/').any(str::is_empty) {
        return invalid("empty path component (leading, trailing or double slash)");
    }
    if Path::new(key)
        .components()
        .any(|component| !matches!(component, Component::Normal(_)))
    {
        return invalid("only plain path components are allowed");
    }
    Ok(())
}

/// The sysctl files of the calling thread's namespaces.
#[derive(Clone, Debug)]
pub struct ProcSysctl {
    root: PathBuf,
}

impl Default for ProcSysctl {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcSysctl {
    /// Sysctls under /proc/sys.
    pub fn new() -> Self {
        Self::with_root("/proc/sys")
    }

    /// Sysctls under another directory (tests).
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, SysctlError> {
        validate(key)?;
        Ok(self.root.join(key))
    }
}

impl Sysctl for ProcSysctl {
    fn get(&self, key: &str) -> Result<Option<String>, SysctlError> {
        match std::fs::read_to_string(self.path(key)?) {
            Ok(value) => Ok(Some(value.trim_end_matches('\n').to_string())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SysctlError::Io {
                key: key.to_string(),
                source,
            }),
        }
    }

    fn set(&self, key: &str, value: &str) -> Result<bool, SysctlError> {
        match self.get(key)? {
            None => Err(SysctlError::NotFound {
                key: key.to_string(),
            }),
            Some(current) if current == value => Ok(false),
            Some(_) => {
                // Sysctl files exist already: open for writing, never create.
                let path = self.path(key)?;
                let result = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|mut file| {
                        std::io::Write::write_all(&mut file, format!("{value}\n").as_bytes())
                    });
                match result {
                    Ok(()) => Ok(true),
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        Err(SysctlError::NotFound {
                            key: key.to_string(),
                        })
                    }
                    Err(source) => Err(SysctlError::Io {
                        key: key.to_string(),
                        source,
                    }),
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct FakeState {
    values: BTreeMap<String, String>,
    writes: Vec<(String, String)>,
}

/// In-memory sysctls that record every write. By default a `set` of an unknown key creates it;
/// `strict()` makes unknown keys `NotFound` like /proc/sys.
#[derive(Debug, Default)]
pub struct FakeSysctl {
    state: Mutex<FakeState>,
    strict: bool,
}

impl FakeSysctl {
    pub fn new() -> Self {
        Self::default()
    }

    /// Unknown keys are `NotFound` on `set`, as in /proc/sys.
    pub fn strict() -> Self {
        Self {
            strict: true,
            ..Self::default()
        }
    }

    /// Seeds a value without recording a write.
    pub fn insert(&self, key: &str, value: &str) {
        self.lock()
            .values
            .insert(key.to_string(), value.to_string());
    }

    /// Every write that changed a value, in order.
    pub fn writes(&self) -> Vec<(String, String)> {
        self.lock().writes.clone()
    }

    /// All current values.
    pub fn values(&self) -> BTreeMap<String, String> {
        self.lock().values.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        // A panic while holding the lock only happens in a failing test; keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Sysctl for FakeSysctl {
    fn get(&self, key: &str) -> Result<Option<String>, SysctlError> {
        validate(key)?;
        Ok(self.lock().values.get(key).cloned())
    }

    fn set(&self, key: &str, value: &str) -> Result<bool, SysctlError> {
        validate(key)?;
        let mut state = self.lock();
        match state.values.get(key) {
            Some(current) if current == value => return Ok(false),
            None if self.strict => {
                return Err(SysctlError::NotFound {
                    key: key.to_string(),
                });
            }
            _ => {}
        }
        state.values.insert(key.to_string(), value.to_string());
        state.writes.push((key.to_string(), value.to_string()));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_interface_list_matches_the_design() {
        let v4 = host_interface_sysctls("cali12345678901", false);
        assert_eq!(
            v4,
            [
                ("net/ipv4/conf/cali12345678901/proxy_arp", "1"),
                ("net/ipv4/neigh/cali12345678901/proxy_delay", "0"),
                ("net/ipv4/conf/cali12345678901/forwarding", "1"),
                ("net/ipv4/conf/cali12345678901/route_localnet", "1"),
            ]
            .map(|(key, value)| (key.to_string(), value.to_string()))
        );
        let dual = host_interface_sysctls("vxlan.calico", true);
        assert_eq!(dual.len(), 7);
        assert!(dual.contains(&("net/ipv6/conf/vxlan.calico/proxy_ndp".into(), "1".into())));
        assert!(dual.contains(&("net/ipv6/conf/vxlan.calico/accept_ra".into(), "0".into())));
        assert!(dual.contains(&("net/ipv6/conf/vxlan.calico/forwarding".into(), "1".into())));
    }

    #[test]
    fn keys_are_validated() {
        let fake = FakeSysctl::new();
        for bad in [
            "",
            "net.ipv4.ip_forward",
            "/net/ipv4/ip_forward",
            "net/../x",
            "net//x",
        ] {
            assert!(
                matches!(fake.set(bad, "1"), Err(SysctlError::InvalidKey { .. })),
                "{bad:?}"
            );
        }
        assert!(
            fake.set("net/ipv4/conf/vxlan.calico/forwarding", "1")
                .is_ok()
        );
    }

    #[test]
    fn proc_sysctl_reads_first_and_writes_only_on_change() -> Result<(), Box<dyn std::error::Error>>
    {
        let root = tempfile::tempdir()?;
        let dir = root.path().join("net/ipv4/conf/vxlan.calico");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("proxy_arp"), "0\n")?;
        let sysctl = ProcSysctl::with_root(root.path());
        let key = "net/ipv4/conf/vxlan.calico/proxy_arp";
        assert_eq!(sysctl.get(key)?, Some("0".to_string()));
        assert!(sysctl.set(key, "1")?);
        assert_eq!(std::fs::read_to_string(dir.join("proxy_arp"))?, "1\n");
        assert!(!sysctl.set(key, "1")?);
        assert_eq!(sysctl.get("net/ipv4/conf/vxlan.calico/missing")?, None);
        assert!(matches!(
            sysctl.set("net/ipv4/conf/vxlan.calico/missing", "1"),
            Err(SysctlError::NotFound { .. })
        ));
        Ok(())
    }

    #[test]
    fn fake_records_only_changing_writes() -> Result<(), SysctlError> {
        let fake = FakeSysctl::new();
        fake.insert("net/ipv4/conf/cali1/proxy_arp", "1");
        assert!(!fake.set("net/ipv4/conf/cali1/proxy_arp", "1")?);
        assert!(fake.set("net/ipv4/conf/cali1/forwarding", "1")?);
        assert_eq!(
            fake.writes(),
            [(
                "net/ipv4/conf/cali1/forwarding".to_string(),
                "1".to_string()
            )]
        );
        let strict = FakeSysctl::strict();
        assert!(matches!(
            strict.set("net/ipv4/conf/cali1/proxy_arp", "1"),
            Err(SysctlError::NotFound { .. })
        ));
        Ok(())
    }
}
