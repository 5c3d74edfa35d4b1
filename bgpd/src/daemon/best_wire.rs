//! Best-path events straight to `BestPathBatch` wire bytes, no I/O. A path is its prefix (text,
//! formatted into a reused buffer) and the 1-based index of its next hops and attributes in
//! the batch's `shared` paths (`BestPath.shared`); each distinct pair of attributes and next
//! hops is encoded once (a full table has few), kept until `forget`, and written once per
//! batch that names it. Decoded and resolved (`BestPathBatch::resolve_shared`), the paths are
//! exactly what `api_convert::best_to_proto` builds.

use std::{collections::HashMap, fmt::Write, net::IpAddr, sync::Arc};

use manul_proto::bgpd::encode_path_field;
use prost::{
    Message,
    encoding::{self, WireType},
};

use super::{api_convert::best_to_proto, watch::BestEvent};
use crate::message::PathAttributes;
use crate::prefix_hash::PrefixHashBuilder;
use crate::rib::NextHops;

/// One distinct pair of attributes and next hops, encoded as a `BestPath` without prefix.
struct Tail {
    /// Held, so that the address that keys it is not reused while it is cached.
    _attributes: Arc<PathAttributes>,
    next_hops: Vec<IpAddr>,
    encoded: Vec<u8>,
    /// The batch that last named it and its 1-based index in that batch's `shared`.
    named_in: (u64, u32),
}

/// The encoded tails per attribute set (by address) and next hops.
type Tails = HashMap<usize, Vec<Tail>, PrefixHashBuilder>;

/// Encodes events; keeps its buffers and, until `forget`, the encoded tails.
#[derive(Default)]
pub struct BestPathEncoder {
    tails: Tails,
    prefix: String,
    path: Vec<u8>,
    /// Counts batches: `encode` starts a new one each call.
    batch: u64,
    /// The tails the current batch names, in index order: (attribute address, position).
    named: Vec<(usize, usize)>,
}

impl BestPathEncoder {
    /// Appends `events` to `out` as one `BestPathBatch`'s repeated field 1, then the shared
    /// paths they name as its field 3.
    pub fn encode(&mut self, events: &[BestEvent], out: &mut Vec<u8>) {
        self.batch += 1;
        self.named.clear();
        for event in events {
            self.path.clear();
            self.prefix.clear();
            write_prefix(&event.prefix, &mut self.prefix);
            encoding::string::encode(1, &self.prefix, &mut self.path);
            match &event.best {
                None => encoding::bool::encode(2, &true, &mut self.path),
                Some((next_hops, attributes)) => {
                    let index = self.name(next_hops.as_slice(), attributes);
                    encoding::uint32::encode(11, &index, &mut self.path);
                }
            }
            encode_path_field(&self.path, out);
        }
        for &(key, position) in &self.named {
            let encoded = &self.tails[&key][position].encoded;
            encoding::encode_key(3, WireType::LengthDelimited, out);
            encoding::encode_varint(encoded.len() as u64, out);
            out.extend_from_slice(encoded);
        }
    }

    /// Drops the cached tails (and with them the attribute sets they hold).
    pub fn forget(&mut self) {
        self.tails.clear();
    }

    /// The 1-based index in this batch's `shared` of the pair, encoding it on first use.
    fn name(&mut self, next_hops: &[IpAddr], attributes: &Arc<PathAttributes>) -> u32 {
        let key = Arc::as_ptr(attributes) as usize;
        let known = self.tails.entry(key).or_default();
        let position = match known.iter().position(|tail| tail.next_hops == next_hops) {
            Some(position) => position,
            None => {
                let event = BestEvent {
                    prefix: ipnet::IpNet::default(),
                    best: Some((
                        NextHops::from_vec(next_hops.to_vec()),
                        Arc::clone(attributes),
                    )),
                };
                let mut path = best_to_proto(&event);
                path.prefix.clear();
                known.push(Tail {
                    _attributes: Arc::clone(attributes),
                    next_hops: next_hops.to_vec(),
                    encoded: path.encode_to_vec(),
                    named_in: (0, 0),
                });
                known.len() - 1
            }
        };
        let tail = &mut known[position];
        if tail.named_in.0 != self.batch {
            self.named.push((key, position));
            tail.named_in = (self.batch, self.named.len() as u32);
        }
        tail.named_in.1
    }
}

/// Appends `prefix` as `Display` writes it. IPv4 by hand: the formatting machinery (padding,
/// a `Formatter` per number) was about a third of the stream task's time.
fn write_prefix(prefix: &ipnet::IpNet, out: &mut String) {
    match prefix {
        ipnet::IpNet::V4(net) => {
            for (position, octet) in net.addr().octets().into_iter().enumerate() {
                if position > 0 {
                    out.push('.');
                }
                write_decimal(octet, out);
            }
            out.push('/');
            write_decimal(net.prefix_len(), out);
        }
        // Writing into a String cannot fail.
        ipnet::IpNet::V6(net) => drop(write!(out, "{net}")),
    }
}

fn write_decimal(value: u8, out: &mut String) {
    if value >= 100 {
        out.push(char::from(b'0' + value / 100));
    }
    if value >= 10 {
        out.push(char::from(b'0' + value / 10 % 10));
    }
    out.push(char::from(b'0' + value % 10));
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use ipnet::IpNet;
    use manul_proto::bgpd as proto;

    use super::*;
    use crate::message::{AsPath, AsSegment, Origin, SegmentKind};

    fn attributes(med: u32, communities: Vec<u32>) -> Arc<PathAttributes> {
        Arc::new(PathAttributes {
            origin: Some(Origin::Egp),
            as_path: Some(AsPath {
                segments: vec![AsSegment {
                    kind: SegmentKind::Sequence,
                    asns: vec![65001, 65002],
                }],
            }),
            med: Some(med),
            local_pref: Some(200),
            communities,
            ..PathAttributes::default()
        })
    }

    fn event(prefix: &str, best: Option<(Vec<IpAddr>, Arc<PathAttributes>)>) -> BestEvent {
        BestEvent {
            prefix: prefix.parse().unwrap(),
            best: best.map(|(hops, attributes)| (NextHops::from_vec(hops), attributes)),
        }
    }

    proptest::proptest! {
        #[test]
        fn prefixes_are_written_as_display_writes_them(address: u32, length in 0u8..=32, v6: u128) {
            let v4 = IpNet::V4(ipnet::Ipv4Net::new(address.into(), length).unwrap());
            let v6 = IpNet::V6(ipnet::Ipv6Net::new(v6.into(), length * 4).unwrap());
            for prefix in [v4, v6] {
                let mut written = String::from("kept ");
                write_prefix(&prefix, &mut written);
                proptest::prop_assert_eq!(written, format!("kept {prefix}"));
            }
        }
    }

    #[test]
    fn each_batch_names_its_own_shared_paths_and_resolves_to_the_converted_paths() {
        let a = attributes(5, vec![0xfde8_0001]);
        let b = attributes(7, Vec::new());
        let v4: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap()];
        let ecmp: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "192.0.2.9".parse().unwrap()];
        let v6: Vec<IpAddr> = vec![IpAddr::V6(Ipv6Addr::LOCALHOST)];
        let events = [
            event("10.0.0.0/24", Some((v4.clone(), a.clone()))),
            event("10.0.1.0/28", Some((v4.clone(), a.clone()))),
            event("10.0.2.0/24", Some((ecmp.clone(), a.clone()))),
            event("10.0.3.0/24", None),
            event("10.0.4.0/24", Some((v4, b.clone()))),
            event("2001:db8::/48", Some((v6, b))),
            event("2001:db8:1::/48", None),
            event("0.0.0.0/0", Some((ecmp, a))),
        ];
        let mut encoder = BestPathEncoder::default();
        // The second batch reuses a tail the first encoded (a with ECMP): it is written
        // again there, under that batch's own index.
        for (events, shared) in [(&events[..3], 2), (&events[3..], 3)] {
            let mut wire = Vec::new();
            encoder.encode(events, &mut wire);
            let mut decoded = proto::BestPathBatch::decode(wire.as_slice()).unwrap();
            assert_eq!(decoded.shared.len(), shared);
            for (path, event) in decoded.paths.iter().zip(events) {
                assert_eq!(path.shared == 0, event.best.is_none(), "{path:?}");
                assert!(path.next_hops.is_empty() && path.origin.is_empty());
            }
            decoded.resolve_shared();
            let expected: Vec<proto::BestPath> = events.iter().map(best_to_proto).collect();
            assert_eq!(decoded.paths, expected);
            let prefixes: Vec<IpNet> = decoded
                .paths
                .iter()
                .map(|p| p.prefix.parse().unwrap())
                .collect();
            assert_eq!(
                prefixes,
                events.iter().map(|e| e.prefix).collect::<Vec<_>>()
            );
        }
        encoder.forget();
        assert!(encoder.tails.is_empty());
    }
}
