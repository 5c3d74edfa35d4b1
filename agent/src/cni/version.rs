//! CNI spec versions: which ones `manul` speaks, which command each allows, and the VERSION
//! answer. No I/O.
//!
//! The plugin answers in the version of the config it was given (the spec requires the result's
//! `cniVersion` to match the config's). CHECK exists from 0.4.0 on; STATUS and GC from 1.1.0 on.
//! Asking for a command the config's version does not have is refused with code 1 (incompatible
//! CNI version), as the reference plugins' `skel` does.

use std::fmt;

use super::environment::Command;

/// A CNI spec version `manul` accepts in a network config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

/// Why a config's version does not fit the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("cniVersion: missing (supported: {list})", list = supported_list())]
    Missing,
    #[error("cniVersion: {0:?} is not supported (supported: {list})", list = supported_list())]
    Unsupported(String),
    #[error("cniVersion {version}: {command} needs cniVersion {since} or later")]
    CommandNotAllowed {
        command: Command,
        version: CniVersion,
        since: CniVersion,
    },
}

impl CniVersion {
    /// Every version `manul` accepts, oldest first (the VERSION command's `supportedVersions`).
    pub const SUPPORTED: [CniVersion; 4] = [
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];

    /// The newest version; used in answers when the config's version is unknown.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// The version written in error JSON when the config's own version is unknown or
    /// unsupported: 1.0.0, which every current runtime decodes (containerd 1.6 rejects 1.1.0).
    pub const FALLBACK_FOR_ERRORS: CniVersion = CniVersion::V1_0_0;

    /// Parses a `cniVersion` string; `None` for anything `manul` does not speak.
    pub fn parse(s: &str) -> Option<CniVersion> {
        Self::SUPPORTED.into_iter().find(|v| v.as_str() == s)
    }

    /// Parses a `cniVersion` that may be absent.
    pub fn negotiate(s: Option<&str>) -> Result<CniVersion, VersionError> {
        match s {
            None | Some("") => Err(VersionError::Missing),
            Some(s) => Self::parse(s).ok_or_else(|| VersionError::Unsupported(s.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// 0.3.x and 0.4.0 results carry `"version": "4"|"6"` in each `ips` entry; 1.x do not.
    pub fn ip_entries_have_version(self) -> bool {
        self < CniVersion::V1_0_0
    }

    /// 1.1.0 added `mtu` to result interfaces.
    pub fn interfaces_have_mtu(self) -> bool {
        self >= CniVersion::V1_1_0
    }

    /// The first version that has `command`.
    pub fn first_with(command: Command) -> CniVersion {
        match command {
            Command::Add | Command::Del | Command::Version => CniVersion::V0_3_1,
            Command::Check => CniVersion::V0_4_0,
            Command::Status | Command::Gc => CniVersion::V1_1_0,
        }
    }

    /// Refuses a command the config's version does not have.
    pub fn allows(self, command: Command) -> Result<(), VersionError> {
        let since = Self::first_with(command);
        if self >= since {
            Ok(())
        } else {
            Err(VersionError::CommandNotAllowed {
                command,
                version: self,
                since,
            })
        }
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn supported_list() -> String {
    CniVersion::SUPPORTED
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The VERSION command's answer. `cniVersion` echoes the caller's version when `manul` speaks
/// it, else the newest one.
pub fn version_info_json(requested: Option<CniVersion>) -> String {
    let info = serde_json::json!({
        "cniVersion": requested.unwrap_or(CniVersion::LATEST).as_str(),
        "supportedVersions": CniVersion::SUPPORTED.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
    });
    info.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly_the_supported_versions() {
        for v in CniVersion::SUPPORTED {
            assert_eq!(CniVersion::parse(v.as_str()), Some(v));
        }
        for bad in [
            "0.1.0", "0.2.0", "0.3.0", "1.0", "1.2.0", "9.9.9", " 1.0.0", "",
        ] {
            assert_eq!(CniVersion::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn negotiate_names_missing_and_unsupported() {
        assert_eq!(CniVersion::negotiate(None), Err(VersionError::Missing));
        assert_eq!(CniVersion::negotiate(Some("")), Err(VersionError::Missing));
        let err = CniVersion::negotiate(Some("9.9.9")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cniVersion: \"9.9.9\" is not supported (supported: 0.3.1, 0.4.0, 1.0.0, 1.1.0)"
        );
        assert_eq!(CniVersion::negotiate(Some("0.4.0")), Ok(CniVersion::V0_4_0));
    }

    #[test]
    fn commands_per_version() {
        use Command::*;
        let table = [
            (CniVersion::V0_3_1, [true, true, false, false, false, true]),
            (CniVersion::V0_4_0, [true, true, true, false, false, true]),
            (CniVersion::V1_0_0, [true, true, true, false, false, true]),
            (CniVersion::V1_1_0, [true, true, true, true, true, true]),
        ];
        for (version, allowed) in table {
            for (command, ok) in [Add, Del, Check, Status, Gc, Version]
                .into_iter()
                .zip(allowed)
            {
                assert_eq!(version.allows(command).is_ok(), ok, "{version} {command}");
            }
        }
        assert_eq!(
            CniVersion::V0_3_1
                .allows(Command::Check)
                .unwrap_err()
                .to_string(),
            "cniVersion 0.3.1: CHECK needs cniVersion 0.4.0 or later"
        );
    }

    #[test]
    fn result_shape_per_version() {
        assert!(CniVersion::V0_3_1.ip_entries_have_version());
        assert!(CniVersion::V0_4_0.ip_entries_have_version());
        assert!(!CniVersion::V1_0_0.ip_entries_have_version());
        assert!(!CniVersion::V1_1_0.ip_entries_have_version());
        assert!(!CniVersion::V1_0_0.interfaces_have_mtu());
        assert!(CniVersion::V1_1_0.interfaces_have_mtu());
    }

    #[test]
    fn version_info() {
        assert_eq!(
            version_info_json(Some(CniVersion::V0_4_0)),
            r#"{"cniVersion":"0.4.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}"#
        );
        assert_eq!(
            version_info_json(None),
            r#"{"cniVersion":"1.1.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}"#
        );
    }
}
