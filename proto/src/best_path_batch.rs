//! `BestPathBatch` of bgpd.proto, written by hand instead of generated, no I/O: besides the
//! decoded `paths` it carries `encoded_paths`, paths a sender already encoded (each a field 1
//! of the batch: tag, length, `BestPath` bytes), written to the wire as they are. The daemon
//! streams a million best paths during a full table transfer; building a `BestPath` (five
//! allocations and a string per path) only to encode and free it again took more CPU than the
//! RIB spent on those routes. Decoding is what prost derives: every path lands in `paths`.
//!
//! A path of a batch may name one of the batch's `shared` paths (`BestPath.shared`, 1-based)
//! instead of carrying next hops and attributes itself: the consumer then parses each distinct
//! set once per batch, not once per path. `resolve_shared` turns such a batch into plain paths
//! for consumers that want every field in place.

use prost::{
    DecodeError, Message,
    bytes::{Buf, BufMut, Bytes},
    encoding::{self, DecodeContext, WireType},
};

use crate::bgpd::BestPath;

#[derive(Clone, PartialEq, Default, Debug)]
pub struct BestPathBatch {
    pub paths: Vec<BestPath>,
    /// Set on the last batch of the initial snapshot (which may be empty).
    pub snapshot_done: bool,
    /// Paths already encoded as repeated field 1 (see `encode_path_field`), sent before
    /// `paths`. Always empty after decoding.
    pub encoded_paths: Bytes,
    /// Next hops and attributes that paths name by `BestPath.shared` (1 = the first).
    pub shared: Vec<BestPath>,
}

impl BestPathBatch {
    /// Copies each named shared path's next hops and attributes into the paths that name it
    /// (keeping their prefix and withdrawn flag) and empties `shared`. A path naming a
    /// shared path the batch lacks is left without next hops.
    pub fn resolve_shared(&mut self) {
        let shared = std::mem::take(&mut self.shared);
        for path in &mut self.paths {
            let index = std::mem::take(&mut path.shared);
            if index == 0 {
                continue;
            }
            if let Some(named) = shared.get(index as usize - 1) {
                *path = BestPath {
                    prefix: std::mem::take(&mut path.prefix),
                    withdrawn: path.withdrawn,
                    shared: 0,
                    ..named.clone()
                };
            }
        }
    }
}

/// Appends `path` (an encoded `BestPath`) to `out` as field 1 of a `BestPathBatch`.
pub fn encode_path_field(path: &[u8], out: &mut impl BufMut) {
    encoding::encode_key(1, WireType::LengthDelimited, out);
    encoding::encode_varint(path.len() as u64, out);
    out.put_slice(path);
}

impl Message for BestPathBatch {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.encoded_paths);
        encoding::message::encode_repeated(1, &self.paths, buf);
        if self.snapshot_done {
            encoding::bool::encode(2, &self.snapshot_done, buf);
        }
        encoding::message::encode_repeated(3, &self.shared, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::message::merge_repeated(wire_type, &mut self.paths, buf, ctx).map_err(
                |mut error| {
                    error.push("BestPathBatch", "paths");
                    error
                },
            ),
            2 => encoding::bool::merge(wire_type, &mut self.snapshot_done, buf, ctx).map_err(
                |mut error| {
                    error.push("BestPathBatch", "snapshot_done");
                    error
                },
            ),
            3 => encoding::message::merge_repeated(wire_type, &mut self.shared, buf, ctx).map_err(
                |mut error| {
                    error.push("BestPathBatch", "shared");
                    error
                },
            ),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        self.encoded_paths.len()
            + encoding::message::encoded_len_repeated(1, &self.paths)
            + if self.snapshot_done {
                encoding::bool::encoded_len(2, &self.snapshot_done)
            } else {
                0
            }
            + encoding::message::encoded_len_repeated(3, &self.shared)
    }

    fn clear(&mut self) {
        self.paths.clear();
        self.snapshot_done = false;
        self.encoded_paths = Bytes::new();
        self.shared.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(prefix: &str, withdrawn: bool) -> BestPath {
        BestPath {
            prefix: prefix.to_string(),
            withdrawn,
            next_hops: vec!["192.0.2.1".to_string()],
            as_path: vec![65001, 65002],
            med: Some(0),
            origin: "IGP".to_string(),
            ..BestPath::default()
        }
    }

    #[test]
    fn encoded_paths_decode_as_paths_in_order_before_the_others() {
        let mut encoded = Vec::new();
        for prefix in ["10.0.0.0/24", "10.0.1.0/25"] {
            encode_path_field(&path(prefix, false).encode_to_vec(), &mut encoded);
        }
        let batch = BestPathBatch {
            paths: vec![path("10.0.2.0/26", true)],
            snapshot_done: true,
            encoded_paths: Bytes::from(encoded),
            shared: Vec::new(),
        };
        let wire = batch.encode_to_vec();
        assert_eq!(wire.len(), batch.encoded_len());
        let decoded = BestPathBatch::decode(wire.as_slice()).unwrap();
        assert_eq!(
            decoded,
            BestPathBatch {
                paths: vec![
                    path("10.0.0.0/24", false),
                    path("10.0.1.0/25", false),
                    path("10.0.2.0/26", true)
                ],
                snapshot_done: true,
                encoded_paths: Bytes::new(),
                shared: Vec::new(),
            }
        );
    }

    #[test]
    fn shared_paths_round_trip_and_resolve_into_the_paths_that_name_them() {
        let named = |prefix: &str, shared: u32| BestPath {
            prefix: prefix.to_string(),
            shared,
            ..BestPath::default()
        };
        let mut common = path("", false);
        common.med = Some(7);
        let batch = BestPathBatch {
            paths: vec![
                named("10.0.0.0/24", 1),
                path("10.0.1.0/24", true),
                named("10.0.2.0/24", 1),
                named("10.0.3.0/24", 2),
            ],
            shared: vec![common.clone()],
            ..BestPathBatch::default()
        };
        let mut decoded = BestPathBatch::decode(batch.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, batch);
        decoded.resolve_shared();
        let mut expected = common.clone();
        expected.prefix = "10.0.0.0/24".to_string();
        assert_eq!(decoded.paths[0], expected);
        expected.prefix = "10.0.2.0/24".to_string();
        assert_eq!(decoded.paths[2], expected);
        assert_eq!(decoded.paths[1], path("10.0.1.0/24", true));
        // Index 2 is past `shared`: no next hops, and no index left behind.
        assert_eq!(decoded.paths[3], named("10.0.3.0/24", 0));
        assert!(decoded.shared.is_empty());
    }

    #[test]
    fn an_empty_batch_is_empty_on_the_wire() {
        assert!(BestPathBatch::default().encode_to_vec().is_empty());
        let decoded = BestPathBatch::decode(&[][..]).unwrap();
        assert_eq!(decoded, BestPathBatch::default());
    }
}
