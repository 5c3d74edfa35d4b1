//! `BestPathBatch` of bgpd.proto, written by hand instead of generated, no I/O: besides the
//! decoded `paths` it carries `encoded_paths`, paths a sender already encoded (each a field 1
//! of the batch: tag, length, `BestPath` bytes), written to the wire as they are. The daemon
//! streams a million best paths during a full table transfer; building a `BestPath` (five
//! allocations and a string per path) only to encode and free it again took more CPU than the
//! RIB spent on those routes. Decoding is what prost derives: every path lands in `paths`.

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
    }

    fn clear(&mut self) {
        self.paths.clear();
        self.snapshot_done = false;
        self.encoded_paths = Bytes::new();
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
            }
        );
    }

    #[test]
    fn an_empty_batch_is_empty_on_the_wire() {
        assert!(BestPathBatch::default().encode_to_vec().is_empty());
        let decoded = BestPathBatch::decode(&[][..]).unwrap();
        assert_eq!(decoded, BestPathBatch::default());
    }
}
