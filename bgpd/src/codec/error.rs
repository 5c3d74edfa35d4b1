//! Codec errors: a decode error carries the NOTIFICATION that resets the session; an encode
//! error says why a value cannot be put on the wire. No I/O.

use crate::message::{Notification, error_code};

/// A decode failure that resets the session: send `notification`, then close.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (NOTIFICATION {}/{})", .notification.code, .notification.subcode)]
pub struct DecodeError {
    pub notification: Notification,
    pub reason: String,
}

impl DecodeError {
    pub fn new(code: u8, subcode: u8, data: Vec<u8>, reason: impl Into<String>) -> Self {
        DecodeError {
            notification: Notification {
                code,
                subcode,
                data,
            },
            reason: reason.into(),
        }
    }

    /// Message Header Error (1/subcode).
    pub(crate) fn header(subcode: u8, data: Vec<u8>, reason: impl Into<String>) -> Self {
        Self::new(error_code::MESSAGE_HEADER, subcode, data, reason)
    }

    /// Bad Message Length (1/2) with the offending length as data.
    pub(crate) fn bad_length(length: u16, reason: impl Into<String>) -> Self {
        Self::header(
            error_code::BAD_MESSAGE_LENGTH,
            length.to_be_bytes().to_vec(),
            reason,
        )
    }

    /// OPEN Message Error (2/subcode), no data.
    pub(crate) fn open(subcode: u8, reason: impl Into<String>) -> Self {
        Self::new(error_code::OPEN_MESSAGE, subcode, Vec::new(), reason)
    }

    /// UPDATE Message Error (3/subcode).
    pub(crate) fn update(subcode: u8, data: &[u8], reason: impl Into<String>) -> Self {
        Self::new(error_code::UPDATE_MESSAGE, subcode, data.to_vec(), reason)
    }
}

/// A value that cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message of {length} bytes exceeds the {max}-byte limit", max = super::MAX_MESSAGE_LEN)]
    TooLong { length: usize },
    #[error("{0}")]
    Invalid(String),
}

impl EncodeError {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        EncodeError::Invalid(reason.into())
    }
}
