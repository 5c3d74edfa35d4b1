//! The bench's WatchBestPaths client: it takes each `BestPathBatch` as raw bytes and reads only
//! the two fields it counts (prefix, withdrawn), so that the stream's cost on the shared cores
//! is manul-bgpd's and not the bench's (decoding every path into a `BestPath` of strings and
//! keeping a set of strings took more CPU than the daemon's RIB thread). Does I/O (the socket).

use std::{collections::HashSet, path::Path};

use anyhow::{Context, Result, bail, ensure};
use manul_bgpd::daemon::api::connect_channel;
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

/// Subscribes; each item of the stream is one `BestPathBatch`, undecoded.
pub async fn subscribe(socket: &Path) -> Result<tonic::codec::Streaming<Bytes>> {
    let mut grpc = tonic::client::Grpc::new(connect_channel(socket).await?);
    grpc.ready().await.context("the API socket")?;
    let path = PathAndQuery::from_static("/manul.bgpd.v1.Bgpd/WatchBestPaths");
    let request = tonic::Request::new(proto::WatchBestPathsRequest {});
    let response = grpc.server_streaming(request, path, RawCodec).await;
    Ok(response.context("WatchBestPaths")?.into_inner())
}

/// Prefixes with a best path, as the stream tells them.
#[derive(Default)]
pub struct LivePrefixes {
    /// (address, length; IPv6 lengths offset by 256).
    live: HashSet<(u128, u16)>,
}

/// What one batch held.
pub struct BatchSummary {
    pub paths: usize,
    pub snapshot_done: bool,
}

impl LivePrefixes {
    pub fn len(&self) -> usize {
        self.live.len()
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
                    if withdrawn {
                        self.live.remove(&key);
                    } else {
                        self.live.insert(key);
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
fn path_key(mut path: &[u8]) -> Result<((u128, u16), bool)> {
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
                prefix = Some(std::str::from_utf8(text)?.parse::<ipnet::IpNet>()?);
            }
            (2, WireType::Varint) => withdrawn = decode_varint(&mut path)? != 0,
            _ => skip_field(wire_type, tag, &mut path, DecodeContext::default())?,
        }
    }
    let key = match prefix {
        Some(ipnet::IpNet::V4(net)) => (
            u128::from(net.addr().to_bits()),
            u16::from(net.prefix_len()),
        ),
        Some(ipnet::IpNet::V6(net)) => (net.addr().to_bits(), 256 + u16::from(net.prefix_len())),
        None => bail!("a path without a prefix"),
    };
    Ok((key, withdrawn))
}

/// Requests as prost encodes them; responses as the bytes of the message.
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
