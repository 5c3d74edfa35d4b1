//! Interface features through the kernel's ethtool generic netlink family (Linux 5.6+), as
//! `ethtool -K DEV rx-gro on` does: the agent turns GRO on at the host end of each pod's veth.
//! Does I/O: a blocking NETLINK_GENERIC socket in the agent's namespace, used from the blocking
//! pool. The messages are built by hand (the published ethtool crate only reads features).
//!
//! Why GRO at the host end: a veth without GRO hands the node every packet of the pod as it
//! was sent, so each one is routed, tracked by conntrack and pushed through the next device on
//! its own. With GRO the veth's NAPI merges a TCP flow's packets into one large packet first,
//! and everything after it runs once per merged packet.
//!
//! Requests (`linux/ethtool_netlink.h`, `linux/genetlink.h`):
//!
//! | message | attributes |
//! |---|---|
//! | `CTRL_CMD_GETFAMILY` to `GENL_ID_CTRL` | `CTRL_ATTR_FAMILY_NAME` "ethtool"; the answer's `CTRL_ATTR_FAMILY_ID` |
//! | `ETHTOOL_MSG_FEATURES_SET` | `HEADER` {`DEV_INDEX`, `FLAGS` = OMIT_REPLY}, `WANTED` {`BITS` {`BIT` {`NAME`, `VALUE`?}}} |
//!
//! A bitset without `NOMASK` changes only the bits it lists, and a request that changes
//! nothing changes nothing in the kernel either.

use std::sync::Mutex;

use rtnetlink::{
    packet_core::{ErrorBuffer, NLM_F_ACK, NLM_F_REQUEST},
    sys::{Socket, protocols::NETLINK_GENERIC},
};

use super::route_batch::{NLMSG_ERROR, messages, own_socket_of};
use crate::netlink::NetlinkError;

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

const ETHTOOL_GENL_NAME: &str = "ethtool";
const ETHTOOL_GENL_VERSION: u8 = 1;
const ETHTOOL_MSG_FEATURES_SET: u8 = 12;
const ETHTOOL_A_FEATURES_HEADER: u16 = 1;
const ETHTOOL_A_FEATURES_WANTED: u16 = 3;
const ETHTOOL_A_HEADER_DEV_INDEX: u16 = 1;
const ETHTOOL_A_HEADER_FLAGS: u16 = 3;
const ETHTOOL_FLAG_OMIT_REPLY: u32 = 1 << 1;
const ETHTOOL_A_BITSET_BITS: u16 = 3;
const ETHTOOL_A_BITSET_BITS_BIT: u16 = 1;
const ETHTOOL_A_BITSET_BIT_NAME: u16 = 2;
const ETHTOOL_A_BITSET_BIT_VALUE: u16 = 3;
/// Marks an attribute whose payload is attributes (the kernel's strict parsing requires it).
const NLA_F_NESTED: u16 = 0x8000;

/// The feature name of generic receive offload in ethtool's string set.
pub(crate) const GRO: &str = "rx-gro";

/// A socket for ethtool requests, with the family's id resolved when it was opened.
pub(crate) struct EthtoolSocket {
    socket: Mutex<(Socket, u32)>,
    family: u16,
}

impl EthtoolSocket {
    /// A socket in the calling thread's namespace. Fails when the kernel has no ethtool
    /// family (before Linux 5.6, or built without CONFIG_ETHTOOL_NETLINK).
    pub(crate) fn open() -> Result<EthtoolSocket, NetlinkError> {
        let socket = own_socket_of(NETLINK_GENERIC, "ethtool", |_| Ok(()))?;
        let mut attributes = Vec::new();
        attribute(
            &mut attributes,
            CTRL_ATTR_FAMILY_NAME,
            &nul_terminated(ETHTOOL_GENL_NAME),
        );
        let message = request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, 1, &attributes);
        let answer = exchange(&socket, &message, 1, "resolving the ethtool family")?;
        let family = answer.as_deref().and_then(family_id).ok_or_else(|| {
            NetlinkError::Other("the kernel did not name the ethtool family".into())
        })?;
        Ok(EthtoolSocket {
            socket: Mutex::new((socket, 1)),
            family,
        })
    }

    /// Sets one feature (ethtool's name, e.g. `GRO`) of the interface `index`. Blocking.
    pub(crate) fn set_feature(
        &self,
        index: u32,
        feature: &str,
        on: bool,
    ) -> Result<(), NetlinkError> {
        let mut guard = self
            .socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (socket, sequence) = &mut *guard;
        *sequence = sequence.wrapping_add(1);
        let message = request(
            self.family,
            ETHTOOL_MSG_FEATURES_SET,
            ETHTOOL_GENL_VERSION,
            *sequence,
            &features_set_attributes(index, feature, on),
        );
        exchange(socket, &message, *sequence, "setting an interface feature")
            .map(|_| ())
            .map_err(|error| NetlinkError::Link {
                name: format!("ifindex {index}"),
                reason: format!(
                    "setting {feature} {}: {error}",
                    if on { "on" } else { "off" }
                ),
            })
    }
}

/// The attributes of `ETHTOOL_MSG_FEATURES_SET` for one feature of one interface.
fn features_set_attributes(index: u32, feature: &str, on: bool) -> Vec<u8> {
    let mut attributes = Vec::new();
    nested(&mut attributes, ETHTOOL_A_FEATURES_HEADER, |header| {
        attribute(header, ETHTOOL_A_HEADER_DEV_INDEX, &index.to_ne_bytes());
        attribute(
            header,
            ETHTOOL_A_HEADER_FLAGS,
            &ETHTOOL_FLAG_OMIT_REPLY.to_ne_bytes(),
        );
    });
    nested(&mut attributes, ETHTOOL_A_FEATURES_WANTED, |bitset| {
        nested(bitset, ETHTOOL_A_BITSET_BITS, |bits| {
            nested(bits, ETHTOOL_A_BITSET_BITS_BIT, |bit| {
                attribute(bit, ETHTOOL_A_BITSET_BIT_NAME, &nul_terminated(feature));
                if on {
                    attribute(bit, ETHTOOL_A_BITSET_BIT_VALUE, &[]);
                }
            });
        });
    });
    attributes
}

fn nul_terminated(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// Appends one attribute (length, type, payload, padding to 4 bytes).
fn attribute(buffer: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let length = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
    buffer.extend_from_slice(&length.to_ne_bytes());
    buffer.extend_from_slice(&kind.to_ne_bytes());
    buffer.extend_from_slice(payload);
    pad(buffer);
}

/// Appends a nested attribute whose payload `fill` writes.
fn nested(buffer: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = buffer.len();
    buffer.extend_from_slice(&[0, 0]);
    buffer.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    fill(buffer);
    let length = u16::try_from(buffer.len() - start).unwrap_or(u16::MAX);
    buffer[start..start + 2].copy_from_slice(&length.to_ne_bytes());
}

fn pad(buffer: &mut Vec<u8>) {
    while !buffer.len().is_multiple_of(4) {
        buffer.push(0);
    }
}

/// A generic netlink request: netlink header, generic header (command, version), attributes.
fn request(family: u16, command: u8, version: u8, sequence: u32, attributes: &[u8]) -> Vec<u8> {
    let length = u32::try_from(16 + 4 + attributes.len()).unwrap_or(u32::MAX);
    let mut message = Vec::with_capacity(length as usize);
    message.extend_from_slice(&length.to_ne_bytes());
    message.extend_from_slice(&family.to_ne_bytes());
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    message.extend_from_slice(&sequence.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes());
    message.extend_from_slice(&[command, version, 0, 0]);
    message.extend_from_slice(attributes);
    message
}

/// Sends `message` and reads until its acknowledgement: the payload of the answer that came
/// before it (None for none), or the kernel's error.
fn exchange(
    socket: &Socket,
    message: &[u8],
    sequence: u32,
    what: &str,
) -> Result<Option<Vec<u8>>, NetlinkError> {
    socket
        .send(message, 0)
        .map_err(|error| NetlinkError::Other(format!("{what}: sending: {error}")))?;
    let mut receive = vec![0u8; 16 * 1024];
    let mut answer = None;
    loop {
        let length = socket
            .recv(&mut &mut receive[..], 0)
            .map_err(|error| NetlinkError::Other(format!("{what}: reading: {error}")))?;
        for message in messages(&receive[..length]) {
            if message.sequence_number() != sequence {
                continue;
            }
            if message.message_type() != NLMSG_ERROR {
                answer = Some(message.payload().to_vec());
                continue;
            }
            let code = ErrorBuffer::new_checked(message.payload())
                .ok()
                .and_then(|error| error.code())
                .map_or(0, |code| -code.get());
            if code == 0 {
                return Ok(answer);
            }
            return Err(NetlinkError::Other(format!(
                "{what}: {}",
                std::io::Error::from_raw_os_error(code)
            )));
        }
    }
}

/// `CTRL_ATTR_FAMILY_ID` of a `CTRL_CMD_NEWFAMILY` answer (its payload, generic header first).
fn family_id(payload: &[u8]) -> Option<u16> {
    let mut rest = payload.get(4..)?;
    while rest.len() >= 4 {
        let length = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & !NLA_F_NESTED;
        if length < 4 || length > rest.len() {
            return None;
        }
        if kind == CTRL_ATTR_FAMILY_ID && length >= 6 {
            return Some(u16::from_ne_bytes([rest[4], rest[5]]));
        }
        rest = rest.get((length + 3) & !3..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_request_nests_the_bit_under_wanted_with_its_value() {
        let bytes = features_set_attributes(7, GRO, true);
        // HEADER (nested): DEV_INDEX 7, FLAGS OMIT_REPLY.
        let header: &[u8] = &[
            20, 0, 0x01, 0x80, 8, 0, 1, 0, 7, 0, 0, 0, 8, 0, 3, 0, 2, 0, 0, 0,
        ];
        assert_eq!(&bytes[..20], header);
        // WANTED (nested) > BITS (nested) > BIT (nested) > NAME "rx-gro\0" (padded), VALUE.
        let wanted: &[u8] = &[
            28, 0, 0x03, 0x80, 24, 0, 0x03, 0x80, 20, 0, 0x01, 0x80, 11, 0, 2, 0, b'r', b'x', b'-',
            b'g', b'r', b'o', 0, 0, 4, 0, 3, 0,
        ];
        assert_eq!(&bytes[20..], wanted);
        // Off: the same bit without VALUE.
        let off = features_set_attributes(7, GRO, false);
        assert_eq!(off.len(), bytes.len() - 4);
    }

    #[test]
    fn the_family_id_is_read_among_other_attributes() {
        // Generic header, FAMILY_NAME "ethtool\0", FAMILY_ID 21 (padded).
        let mut payload = vec![1, 2, 0, 0];
        attribute(
            &mut payload,
            CTRL_ATTR_FAMILY_NAME,
            &nul_terminated("ethtool"),
        );
        attribute(&mut payload, CTRL_ATTR_FAMILY_ID, &21u16.to_ne_bytes());
        assert_eq!(family_id(&payload), Some(21));
        assert_eq!(family_id(&payload[..16]), None);
        // A length running past the end ends the search.
        let mut broken = vec![1, 2, 0, 0, 200, 0, 1, 0];
        broken.extend_from_slice(&[0; 4]);
        assert_eq!(family_id(&broken), None);
    }
}
