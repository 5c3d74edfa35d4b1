//! The bench's WatchBestPaths client: it takes each `BestPathBatch` as raw bytes and reads only
//! the two fields it counts (prefix, withdrawn), so that the stream's cost on the shared cores
//! is manul-bgpd's and not the bench's (decoding every path into a `BestPath` of strings and
//! keeping a set of strings took more CPU than the daemon's RIB thread). Does I/O (the socket).

use std::{collections::HashSet, path::Path};

use anyhow::{Context, Result, ensure};
use manul_bgpd::{daemon::api::connect_channel, prefix_hash::PrefixHashBuilder};
use manul_proto::bgpd as proto;
use prost::{
    Message,
    bytes::{Buf, Bytes},
    encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field},
};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
};

use crate::lab;

/// Subscribes; each item of the stream is one `BestPathBatch`, undecoded.
pub async fn subscribe(socket: &Path) -> Result<tonic::codec::Streaming<Bytes>> {
    let mut grpc = tonic::client::Grpc::new(connect_channel(socket).await?);
    grpc.ready().await.context("the API socket")?;
    let path = PathAndQuery::from_static("/manul.bgpd.v1.Bgpd/WatchBestPaths");
    let request = tonic::Request::new(proto::WatchBestPathsRequest {});
    let response = grpc.server_streaming(request, path, RawCodec).await;
    Ok(response.context("WatchBestPaths")?.into_inner())
}

/// The prefixes with a best path, as the stream tells them. Cheap per path, since the bench's
/// subscriber shares the two cores with the daemons it measures (and a BIRD receiver has no
/// subscriber): IPv4 prefixes are parsed by hand into a `u64` (ipnet's parser and SipHash over
/// a 32-byte key were a third of its time). The prefixes the bench generates (`lab::prefix`)
/// are bits of a bitmap by their index, 128 KiB for a million, which stays in the core's cache;
/// a set of a million keys missed it at every insert (0.2 s of CPU per full table). Any other
/// prefix goes to a set hashed with manul-bgpd's prefix hasher.
#[derive(Default)]
pub struct LivePrefixes {
    /// Bit `i`: `lab::prefix(i)` has a best path, for `i` under `slots`.
    generated: Vec<u64>,
    slots: usize,
    /// How many bits of `generated` are set.
    generated_live: usize,
    /// Address << 8 | length.
    v4: HashSet<u64, PrefixHashBuilder>,
    v6: HashSet<(u128, u8), PrefixHashBuilder>,
}

pub struct BatchSummary {
    pub paths: usize,
    pub snapshot_done: bool,
}

impl LivePrefixes {
    /// Bits for the first `generated` prefixes of `lab::prefix`.
    pub fn for_generated(generated: usize) -> LivePrefixes {
        LivePrefixes {
            generated: vec![0; generated.div_ceil(64)],
            slots: generated,
            ..LivePrefixes::default()
        }
    }

    pub fn len(&self) -> usize {
        self.generated_live + self.v4.len() + self.v6.len()
    }

    /// Sets (`live`) or clears the prefix's bit or set entry.
    fn note_v4(&mut self, key: u64, live: bool) {
        match lab::prefix_index((key >> 8) as u32, key as u8, self.slots) {
            Some(index) => {
                let (word, bit) = (&mut self.generated[index / 64], 1u64 << (index % 64));
                let was = *word & bit != 0;
                if live {
                    *word |= bit
                } else {
                    *word &= !bit
                }
                self.generated_live = self.generated_live + usize::from(live) - usize::from(was);
            }
            None if live => drop(self.v4.insert(key)),
            None => drop(self.v4.remove(&key)),
        }
    }

    /// Applies one batch: its adds and withdrawals.
    pub fn apply(&mut self, mut batch: &[u8]) -> Result<BatchSummary> {
        let mut summary = BatchSummary {
            paths: 0,
            snapshot_done: false,
        };
        while batch.has_remaining() {
            let (tag, wire_type) = decode_key(&mut batch)?;
            match (tag, wire_type) {
                (1, WireType::LengthDelimited) => {
                    let len = decode_varint(&mut batch)? as usize;
                    ensure!(len <= batch.len(), "a path runs past its batch");
                    let (path, rest) = batch.split_at(len);
                    batch = rest;
                    let (key, withdrawn) = path_key(path)?;
                    match (key, withdrawn) {
                        (Key::V4(key), withdrawn) => self.note_v4(key, !withdrawn),
                        (Key::V6(key), true) => drop(self.v6.remove(&key)),
                        (Key::V6(key), false) => drop(self.v6.insert(key)),
                    }
                    summary.paths += 1;
                }
                (2, WireType::Varint) => summary.snapshot_done = decode_varint(&mut batch)? != 0,
                _ => skip_field(wire_type, tag, &mut batch, DecodeContext::default())?,
            }
        }
        Ok(summary)
    }
}

/// The prefix (as a set key) and withdrawn flag of one encoded `BestPath`.
enum Key {
    V4(u64),
    V6((u128, u8)),
}

fn path_key(mut path: &[u8]) -> Result<(Key, bool)> {
    let mut prefix = None;
    let mut withdrawn = false;
    while path.has_remaining() {
        let (tag, wire_type) = decode_key(&mut path)?;
        match (tag, wire_type) {
            (1, WireType::LengthDelimited) => {
                let len = decode_varint(&mut path)? as usize;
                ensure!(len <= path.len(), "a prefix runs past its path");
                let (text, rest) = path.split_at(len);
                path = rest;
                prefix = Some(prefix_key(text)?);
            }
            (2, WireType::Varint) => withdrawn = decode_varint(&mut path)? != 0,
            _ => skip_field(wire_type, tag, &mut path, DecodeContext::default())?,
        }
    }
    Ok((prefix.context("a path without a prefix")?, withdrawn))
}

/// The key of a prefix's text: "a.b.c.d/n" by hand, the rest through ipnet.
fn prefix_key(text: &[u8]) -> Result<Key> {
    if let Some(key) = ipv4_key(text) {
        return Ok(Key::V4(key));
    }
    Ok(match std::str::from_utf8(text)?.parse::<ipnet::IpNet>()? {
        ipnet::IpNet::V4(net) => {
            Key::V4(u64::from(net.addr().to_bits()) << 8 | u64::from(net.prefix_len()))
        }
        ipnet::IpNet::V6(net) => Key::V6((net.addr().to_bits(), net.prefix_len())),
    })
}

/// "a.b.c.d/n" with plain decimal numbers in range, as address << 8 | length; `None` for
/// anything else.
fn ipv4_key(text: &[u8]) -> Option<u64> {
    let (address, length) = text.split_at(text.iter().position(|&b| b == b'/')?);
    let number = |digits: &[u8], max: u32| -> Option<u32> {
        if digits.is_empty() || digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let value = digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'));
        (value <= max).then_some(value)
    };
    let mut bits = 0u64;
    let mut octets = 0;
    for octet in address.split(|&b| b == b'.') {
        bits = bits << 8 | u64::from(number(octet, 255)?);
        octets += 1;
    }
    let length = number(&length[1..], 32)?;
    (octets == 4).then_some(bits << 8 | u64::from(length))
}

struct RawCodec;

impl Codec for RawCodec {
    type Encode = proto::WatchBestPathsRequest;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = proto::WatchBestPathsRequest;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.encoded_len());
        item.encode_raw(dst);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(prefix: &str, withdrawn: bool) -> proto::BestPath {
        proto::BestPath {
            prefix: prefix.to_string(),
            withdrawn,
            next_hops: vec!["192.0.2.1".to_string()],
            as_path: vec![65001],
            origin: "IGP".to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn counts_adds_less_withdrawals_and_sees_snapshot_done() {
        let mut live = LivePrefixes::default();
        let first = proto::BestPathBatch {
            paths: vec![
                path("10.0.0.0/24", false),
                path("10.0.0.0/25", false),
                path("2001:db8::/48", false),
            ],
            snapshot_done: true,
            ..Default::default()
        };
        let summary = live.apply(&first.encode_to_vec()).unwrap();
        assert_eq!(
            (summary.paths, summary.snapshot_done, live.len()),
            (3, true, 3)
        );
        let second = proto::BestPathBatch {
            paths: vec![path("10.0.0.0/24", true), path("10.0.0.0/25", false)],
            ..Default::default()
        };
        let summary = live.apply(&second.encode_to_vec()).unwrap();
        assert_eq!(
            (summary.paths, summary.snapshot_done, live.len()),
            (2, false, 2)
        );
    }

    #[test]
    fn generated_prefixes_are_counted_once_as_bits_and_others_in_the_set() {
        let mut live = LivePrefixes::for_generated(100);
        let batch = |paths: Vec<proto::BestPath>| proto::BestPathBatch {
            paths,
            ..Default::default()
        };
        // Three of the first 100 generated prefixes (one twice), prefix 100 (past them), a
        // prefix in a generated slot with another length, and one outside the slots.
        let first = batch(vec![
            path(&lab::prefix(0), false),
            path(&lab::prefix(63), false),
            path(&lab::prefix(64), false),
            path(&lab::prefix(64), false),
            path(&lab::prefix(100), false),
            path("10.0.0.0/25", false),
            path("192.0.2.0/24", false),
        ]);
        live.apply(&first.encode_to_vec()).unwrap();
        assert_eq!((live.generated_live, live.v4.len(), live.len()), (3, 3, 6));
        // A withdrawal twice, and one of a prefix never announced.
        let second = batch(vec![
            path(&lab::prefix(63), true),
            path(&lab::prefix(63), true),
            path(&lab::prefix(99), true),
            path("10.0.0.0/25", true),
        ]);
        live.apply(&second.encode_to_vec()).unwrap();
        assert_eq!((live.generated_live, live.v4.len(), live.len()), (2, 2, 4));
    }

    #[test]
    fn prefix_index_inverts_prefix() {
        for index in [0, 1, 4, 5, 255, 256, 999_999] {
            let net: ipnet::Ipv4Net = lab::prefix(index).parse().unwrap();
            let (address, length) = (net.addr().to_bits(), net.prefix_len());
            assert_eq!(lab::prefix_index(address, length, 1_000_000), Some(index));
            assert_eq!(lab::prefix_index(address, length, index), None);
            assert_eq!(lab::prefix_index(address, length + 1, 1_000_000), None);
            assert_eq!(lab::prefix_index(address + 16, length, 1_000_000), None);
        }
        assert_eq!(lab::prefix_index(0x0900_0000, 24, 1_000_000), None);
    }

    #[test]
    fn ipv4_prefixes_parsed_by_hand_get_the_key_ipnet_gives() {
        for text in [
            "0.0.0.0/0",
            "10.1.2.0/24",
            "255.255.255.255/32",
            "192.0.2.128/25",
        ] {
            let Ok(Key::V4(by_hand)) = prefix_key(text.as_bytes()) else {
                panic!("{text}: not an IPv4 key");
            };
            let net: ipnet::Ipv4Net = text.parse().unwrap();
            let expected = u64::from(net.addr().to_bits()) << 8 | u64::from(net.prefix_len());
            assert_eq!(
                (ipv4_key(text.as_bytes()), by_hand),
                (Some(expected), expected)
            );
        }
        for text in [
            "10.1.2.0",
            "10.1.2/24",
            "10.1.2.0.1/24",
            "256.0.0.0/8",
            "10.0.0.0/33",
            "1.2.3.4/",
        ] {
            assert_eq!(ipv4_key(text.as_bytes()), None, "{text}");
        }
        assert!(prefix_key(b"10.0.0.0/33").is_err());
        assert!(matches!(prefix_key(b"2001:db8::/32"), Ok(Key::V6(_))));
    }

    #[test]
    fn a_truncated_batch_is_an_error() {
        let batch = proto::BestPathBatch {
            paths: vec![path("10.0.0.0/24", false)],
            ..Default::default()
        };
        let wire = batch.encode_to_vec();
        assert!(
            LivePrefixes::default()
                .apply(&wire[..wire.len() - 3])
                .is_err()
        );
    }
}
