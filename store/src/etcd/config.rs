//! What an etcd store connects to: the endpoints parsed from an `etcd://` URL, the key prefix,
//! the TLS files and the timeouts. Reads the TLS files when the connection options are built;
//! no network I/O.

use std::{path::PathBuf, time::Duration};

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};

use crate::datastore::StoreError;

/// The key prefix under which manul keeps its objects: `/manul/v1/<Kind>/<name>`.
pub const DEFAULT_PREFIX: &str = "/manul/v1";

/// The TLS files of an etcd client (Calico's ETCD_CA_CERT_FILE, ETCD_CERT_FILE,
/// ETCD_KEY_FILE). Any of them set means the client speaks TLS; a client certificate needs
/// both the certificate and its key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl EtcdTls {
    pub fn is_enabled(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// Everything an `EtcdStore` needs to reach its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `host:port` of each member; requests go to one at a time and move on when it fails.
    pub endpoints: Vec<String>,
    /// Keys are `<prefix>/<Kind>/<name>`; no trailing slash.
    pub prefix: String,
    pub tls: EtcdTls,
    /// Bound on one request to one member before the next member is tried.
    pub request_timeout: Duration,
    /// How long a request (or a broken watch) keeps retrying across the members before it
    /// fails with a Backend error.
    pub retry_for: Duration,
    /// Keys per list request: a list reads pages of this many keys, all at the revision of
    /// the first page, so that no answer nears gRPC's 4 MiB message limit.
    pub list_page: i64,
}

impl EtcdConfig {
    /// Parses `etcd://host:port[,host:port...]` (a trailing `/` is allowed; nothing after it).
    pub fn from_url(url: &str) -> Result<EtcdConfig, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("an etcd URL starts with etcd://"))?;
        let hosts = rest.strip_suffix('/').unwrap_or(rest);
        if hosts.contains('/') || hosts.contains('?') {
            return Err(bad(
                "an etcd URL names members only (etcd://host:port,host:port); set the key prefix \
                 and TLS files as options (--etcd-prefix, --etcd-ca-file, ...)",
            ));
        }
        let mut endpoints = Vec::new();
        for endpoint in hosts.split(',') {
            let valid = endpoint
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(bad(&format!(
                    "member {endpoint:?} is not host:port (e.g. etcd://10.0.0.1:2379,10.0.0.2:2379)"
                )));
            }
            endpoints.push(endpoint.to_string());
        }
        Ok(EtcdConfig {
            endpoints,
            prefix: DEFAULT_PREFIX.to_string(),
            tls: EtcdTls::default(),
            request_timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(30),
            list_page: 500,
        })
    }

    /// Sets the key prefix; "" or "/" keeps the default. A trailing slash is dropped.
    pub fn with_prefix(mut self, prefix: &str) -> EtcdConfig {
        let trimmed = prefix.trim_end_matches('/');
        if !trimmed.is_empty() {
            self.prefix = if trimmed.starts_with('/') {
                trimmed.to_string()
            } else {
                format!("/{trimmed}")
            };
        }
        self
    }

    pub fn with_tls(mut self, tls: EtcdTls) -> EtcdConfig {
        self.tls = tls;
        self
    }

    pub fn with_retry_for(mut self, retry_for: Duration) -> EtcdConfig {
        self.retry_for = retry_for;
        self
    }

    pub fn with_list_page(mut self, list_page: i64) -> EtcdConfig {
        self.list_page = list_page.max(1);
        self
    }

    /// The member URLs as the client dials them (http:// or https://).
    pub(crate) fn endpoint_urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_enabled() {
            "https"
        } else {
            "http"
        };
        self.endpoints
            .iter()
            .map(|endpoint| format!("{scheme}://{endpoint}"))
            .collect()
    }

    /// The client options, with the TLS files read.
    pub(crate) fn connect_options(&self) -> Result<ConnectOptions, StoreError> {
        let mut options = ConnectOptions::new()
            .with_timeout(self.request_timeout)
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_require_leader(true);
        if self.tls.is_enabled() {
            options = options.with_tls(self.tls_options()?);
        }
        Ok(options)
    }

    fn tls_options(&self) -> Result<TlsOptions, StoreError> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path).map_err(|error| {
                StoreError::Backend(format!(
                    "cannot read the etcd {what} file {}: {error}",
                    path.display()
                ))
            })
        };
        let mut tls = TlsOptions::new();
        if let Some(ca_file) = &self.tls.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca_file, "CA certificate")?));
        }
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(cert_file), Some(key_file)) => {
                let cert = read(cert_file, "client certificate")?;
                let key = read(key_file, "client key")?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            (None, None) => {}
            _ => {
                return Err(StoreError::Backend(
                    "an etcd client certificate needs both --etcd-cert-file and --etcd-key-file"
                        .into(),
                ));
            }
        }
        Ok(tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_lists_members_and_nothing_else() {
        let config = EtcdConfig::from_url("etcd://10.0.0.1:2379,etcd-2.example:2379/").unwrap();
        assert_eq!(config.endpoints, ["10.0.0.1:2379", "etcd-2.example:2379"]);
        assert_eq!(config.prefix, DEFAULT_PREFIX);
        assert_eq!(
            config.endpoint_urls(),
            ["http://10.0.0.1:2379", "http://etcd-2.example:2379"]
        );
        for bad in [
            "etcd://",
            "etcd://host",
            "etcd://host:port",
            "etcd://h:1/x",
            "http://h:1",
        ] {
            let error = EtcdConfig::from_url(bad).unwrap_err();
            assert!(matches!(error, StoreError::BadUrl { .. }), "{bad}: {error}");
        }
    }

    #[test]
    fn tls_files_switch_to_https_and_a_certificate_needs_its_key() {
        let config = EtcdConfig::from_url("etcd://h:2379")
            .unwrap()
            .with_prefix("cluster-a/")
            .with_tls(EtcdTls {
                cert_file: Some("/nonexistent/cert.pem".into()),
                ..Default::default()
            });
        assert_eq!(config.prefix, "/cluster-a");
        assert_eq!(config.endpoint_urls(), ["https://h:2379"]);
        let error = config.connect_options().unwrap_err().to_string();
        assert!(error.contains("--etcd-key-file"), "{error}");
        let missing = config.with_tls(EtcdTls {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        });
        let error = missing.connect_options().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
