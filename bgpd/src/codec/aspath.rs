//! AS_PATH and AS4_PATH (RFC 4271 §4.3, RFC 6793): segments with 2- or 4-octet ASNs, the
//! AS_TRANS substitution for 2-octet peers and the §4.2.3 merge of AS4_PATH back into
//! AS_PATH. Segment types are kept as they are on the wire: AS_SET 1, AS_SEQUENCE 2,
//! AS_CONFED_SEQUENCE 3, AS_CONFED_SET 4. No I/O.

use super::reader::Reader;
use crate::message::{AS_TRANS, AsPath, AsSegment, SegmentKind};

/// The most ASNs one segment can carry.
const MAX_SEGMENT: usize = 255;

/// Decodes an AS_PATH (or AS4_PATH with `four_octet`). Malformed (RFC 7606 §7.2): an unknown
/// segment type, a zero segment length, or a segment overrunning the attribute.
pub(super) fn decode(value: &[u8], four_octet: bool) -> Result<AsPath, &'static str> {
    let mut reader = Reader::new(value);
    let mut segments = Vec::new();
    while !reader.is_empty() {
        let (Some(kind), Some(count)) = (reader.u8(), reader.u8()) else {
            return Err("truncated AS path segment header");
        };
        let kind = match kind {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            4 => SegmentKind::ConfedSet,
            _ => return Err("unknown AS path segment type"),
        };
        if count == 0 {
            return Err("empty AS path segment");
        }
        let width = if four_octet { 4 } else { 2 };
        let bytes = reader
            .take(usize::from(count) * width)
            .ok_or("AS path segment overruns the attribute")?;
        let asns = if four_octet {
            bytes
                .chunks_exact(4)
                .filter_map(|c| c.first_chunk().copied())
                .map(u32::from_be_bytes)
                .collect()
        } else {
            bytes
                .chunks_exact(2)
                .filter_map(|c| c.first_chunk().copied())
                .map(|c| u32::from(u16::from_be_bytes(c)))
                .collect()
        };
        segments.push(AsSegment { kind, asns });
    }
    Ok(AsPath { segments })
}

/// Whether any ASN needs 4 octets (and so a 2-octet peer needs AS4_PATH).
pub(super) fn needs_four_octets(path: &AsPath) -> bool {
    path.segments
        .iter()
        .any(|segment| segment.asns.iter().any(|asn| *asn > u32::from(u16::MAX)))
}

/// Appends the attribute value. With `!four_octet` an ASN above 65535 is written as
/// AS_TRANS. With `skip_confed` (AS4_PATH, RFC 6793 §3) confederation segments are left out.
/// Empty segments are skipped and segments longer than 255 ASNs are split.
pub(super) fn encode(out: &mut Vec<u8>, path: &AsPath, four_octet: bool, skip_confed: bool) {
    for segment in &path.segments {
        let confed = matches!(
            segment.kind,
            SegmentKind::ConfedSequence | SegmentKind::ConfedSet
        );
        if skip_confed && confed {
            continue;
        }
        for chunk in segment.asns.chunks(MAX_SEGMENT) {
            out.push(segment.kind as u8);
            out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
            for asn in chunk {
                if four_octet {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    let narrow = u16::try_from(*asn).unwrap_or(AS_TRANS);
                    out.extend_from_slice(&narrow.to_be_bytes());
                }
            }
        }
    }
}

/// Whether an AS4_PATH carries confederation segments (RFC 6793 §6: it is then discarded).
pub(super) fn has_confed(path: &AsPath) -> bool {
    path.segments.iter().any(|segment| {
        matches!(
            segment.kind,
            SegmentKind::ConfedSequence | SegmentKind::ConfedSet
        )
    })
}

/// RFC 6793 §4.2.3: the leading `len(AS_PATH) - len(AS4_PATH)` ASNs of AS_PATH (confederation
/// segments at its front included), then AS4_PATH. If AS4_PATH is the longer, AS_PATH is kept.
pub(super) fn merge(as_path: AsPath, as4_path: AsPath) -> AsPath {
    let (length, length4) = (as_path.length(), as4_path.length());
    if length < length4 {
        return as_path;
    }
    let mut needed = length - length4;
    let mut segments = Vec::with_capacity(as_path.segments.len() + as4_path.segments.len());
    for mut segment in as_path.segments {
        match segment.kind {
            SegmentKind::ConfedSequence | SegmentKind::ConfedSet => segments.push(segment),
            _ if needed == 0 => break,
            SegmentKind::Set => {
                needed -= 1;
                segments.push(segment);
            }
            SegmentKind::Sequence => {
                let take = needed.min(segment.asns.len());
                needed -= take;
                segment.asns.truncate(take);
                segments.push(segment);
            }
        }
    }
    let mut rest = as4_path.segments.into_iter();
    if let Some(first) = rest.next() {
        match segments.last_mut() {
            Some(last)
                if last.kind == SegmentKind::Sequence
                    && first.kind == SegmentKind::Sequence
                    && last.asns.len() + first.asns.len() <= MAX_SEGMENT =>
            {
                last.asns.extend(first.asns);
            }
            _ => segments.push(first),
        }
    }
    segments.extend(rest);
    AsPath { segments }
}
