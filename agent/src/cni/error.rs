//! CNI errors: the spec's well-known codes, the error JSON the plugin prints, and the ONE place
//! where the agent's gRPC status becomes a CNI code. No I/O.
//!
//! Codes used by `manul`:
//!
//! | code | meaning                         | when                                                   |
//! |------|---------------------------------|--------------------------------------------------------|
//! | 1    | incompatible CNI version        | unknown/missing `cniVersion`; CHECK < 0.4.0; STATUS/GC < 1.1.0 |
//! | 2    | unsupported field               | an `ipam` key `manul` does not know                     |
//! | 3    | container unknown               | agent said NOT_FOUND (not on DEL: that succeeds)        |
//! | 4    | invalid environment variable    | CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH, CNI_ARGS |
//! | 5    | I/O failure                     | any other agent failure; unusable agent answer          |
//! | 6    | failed to decode content        | stdin is not JSON / not an object                       |
//! | 7    | invalid network config          | a field has a bad value (the message names it)          |
//! | 11   | try again later                 | agent socket missing/refusing/timing out; UNAVAILABLE   |
//! | 50   | plugin not available            | STATUS: agent unreachable or not ready                  |
//! | 100  | no address available            | agent said RESOURCE_EXHAUSTED                           |
//! | 101  | address in use                  | agent said ALREADY_EXISTS                               |

use std::path::Path;

use serde::Serialize;
use tonic::Code;

use super::version::CniVersion;

/// A well-known (or manul-specific, >= 100) CNI error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    IncompatibleVersion,
    UnsupportedField,
    ContainerUnknown,
    InvalidEnvironment,
    Io,
    Decode,
    InvalidConfig,
    TryAgainLater,
    PluginNotAvailable,
    NoAddressAvailable,
    AddressInUse,
}

impl ErrorKind {
    pub fn code(self) -> u32 {
        match self {
            ErrorKind::IncompatibleVersion => 1,
            ErrorKind::UnsupportedField => 2,
            ErrorKind::ContainerUnknown => 3,
            ErrorKind::InvalidEnvironment => 4,
            ErrorKind::Io => 5,
            ErrorKind::Decode => 6,
            ErrorKind::InvalidConfig => 7,
            ErrorKind::TryAgainLater => 11,
            ErrorKind::PluginNotAvailable => 50,
            ErrorKind::NoAddressAvailable => 100,
            ErrorKind::AddressInUse => 101,
        }
    }
}

/// An error the plugin reports to its runtime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {}: {msg}", kind.code())]
pub struct CniError {
    pub kind: ErrorKind,
    /// Short message; names the field or variable at fault.
    pub msg: String,
    /// Longer explanation; empty when there is none (then omitted from the JSON).
    pub details: String,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    details: &'a str,
}

impl CniError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> CniError {
        CniError {
            kind,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    pub fn code(&self) -> u32 {
        self.kind.code()
    }

    /// The agent could not be reached (socket missing, connection refused, timeout): code 11
    /// for ADD/DEL/CHECK/GC, so that the runtime retries.
    pub fn agent_unreachable(socket: &Path, cause: &str) -> CniError {
        CniError::new(
            ErrorKind::TryAgainLater,
            format!(
                "cannot reach manul-agent at {}: {cause}; check that manul-agent is running \
                 and listening on that socket",
                socket.display()
            ),
        )
    }

    /// The error JSON of the spec, in `version` (the config's, when known).
    pub fn to_json(&self, version: Option<CniVersion>) -> String {
        let version = version.unwrap_or(CniVersion::FALLBACK_FOR_ERRORS);
        let json = ErrorJson {
            cni_version: version.as_str(),
            code: self.code(),
            msg: &self.msg,
            details: &self.details,
        };
        // Serialising a struct of strings and a number cannot fail; fall back to a fixed
        // message rather than panic.
        serde_json::to_string(&json).unwrap_or_else(|_| {
            format!(
                r#"{{"cniVersion":"{}","code":5,"msg":"cannot encode error"}}"#,
                version.as_str()
            )
        })
    }
}

/// THE mapping from the agent's gRPC status to a CNI error (agent.proto documents it):
/// INVALID_ARGUMENT -> 7, NOT_FOUND -> 3, RESOURCE_EXHAUSTED -> 100, ALREADY_EXISTS -> 101,
/// UNAVAILABLE -> 11, anything else -> 5. In addition, DEADLINE_EXCEEDED and CANCELLED (what
/// tonic reports when the plugin's own request timeout fires) -> 11: the agent is busy or
/// stuck, and the runtime should retry.
pub fn from_status(status: &tonic::Status) -> CniError {
    let kind = kind_of(status.code());
    let message = status.message();
    let msg = match kind {
        ErrorKind::TryAgainLater => format!(
            "manul-agent cannot serve the request now ({}): {message}; try again later",
            code_name(status.code())
        ),
        _ if message.is_empty() => format!("manul-agent: {}", code_name(status.code())),
        _ => message.to_owned(),
    };
    CniError::new(kind, msg).with_details(format!("gRPC status {}", code_name(status.code())))
}

/// The code table of [`from_status`].
pub fn kind_of(code: Code) -> ErrorKind {
    match code {
        Code::InvalidArgument => ErrorKind::InvalidConfig,
        Code::NotFound => ErrorKind::ContainerUnknown,
        Code::ResourceExhausted => ErrorKind::NoAddressAvailable,
        Code::AlreadyExists => ErrorKind::AddressInUse,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => ErrorKind::TryAgainLater,
        _ => ErrorKind::Io,
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_cni_codes() {
        let table = [
            (Code::InvalidArgument, 7),
            (Code::NotFound, 3),
            (Code::ResourceExhausted, 100),
            (Code::AlreadyExists, 101),
            (Code::Unavailable, 11),
            (Code::DeadlineExceeded, 11),
            (Code::Cancelled, 11),
            (Code::Internal, 5),
            (Code::Unknown, 5),
            (Code::FailedPrecondition, 5),
            (Code::PermissionDenied, 5),
            (Code::Unimplemented, 5),
        ];
        for (code, cni) in table {
            assert_eq!(
                from_status(&tonic::Status::new(code, "x")).code(),
                cni,
                "{code:?}"
            );
        }
    }

    #[test]
    fn status_message_is_kept() {
        let err = from_status(&tonic::Status::resource_exhausted(
            "pool 10.0.0.0/24 is full",
        ));
        assert_eq!(err.msg, "pool 10.0.0.0/24 is full");
        assert_eq!(err.details, "gRPC status RESOURCE_EXHAUSTED");
        let err = from_status(&tonic::Status::internal(""));
        assert_eq!(err.msg, "manul-agent: INTERNAL");
    }

    #[test]
    fn error_json_is_exact() {
        let err = CniError::new(ErrorKind::InvalidConfig, "mtu: 70000 is above 65535");
        assert_eq!(
            err.to_json(Some(CniVersion::V0_3_1)),
            r#"{"cniVersion":"0.3.1","code":7,"msg":"mtu: 70000 is above 65535"}"#
        );
        let err = err.with_details("see \"x\"");
        assert_eq!(
            err.to_json(None),
            r#"{"cniVersion":"1.0.0","code":7,"msg":"mtu: 70000 is above 65535","details":"see \"x\""}"#
        );
    }

    #[test]
    fn unreachable_names_the_socket() {
        let err = CniError::agent_unreachable(Path::new("/run/x.sock"), "connection refused");
        assert_eq!(err.code(), 11);
        assert!(err.msg.contains("/run/x.sock"), "{}", err.msg);
        assert!(err.msg.contains("manul-agent is running"), "{}", err.msg);
    }
}
