//! Best-path events straight to `BestPathBatch` wire bytes, no I/O. A path is its prefix (text,
//! formatted into a reused buffer) followed by the rest of its `BestPath` fields, which depend
//! only on the attributes and next hops: those bytes are encoded once per distinct pair in a
//! chunk (a full table has few) and copied for every path that shares them. The bytes are
//! exactly what prost writes for the `BestPath` that `api_convert::best_to_proto` builds.

use std::{collections::HashMap, fmt::Write, net::IpAddr, sync::Arc};

use manul_proto::bgpd::encode_path_field;
use prost::{Message, encoding};

use super::{api_convert::best_to_proto, watch::BestEvent};
use crate::message::PathAttributes;
use crate::prefix_hash::PrefixHashBuilder;
use crate::rib::NextHops;

/// The encoded fields after the prefix, per attribute set (by address: the set is held, so
/// the address is not reused while cached) and next hops.
type Tails = HashMap<usize, Vec<(Arc<PathAttributes>, Vec<IpAddr>, Vec<u8>)>, PrefixHashBuilder>;

/// Encodes events; keeps its buffers and, until `forget`, the encoded tails.
#[derive(Default)]
pub struct BestPathEncoder {
    tails: Tails,
    prefix: String,
    path: Vec<u8>,
}

impl BestPathEncoder {
    /// Appends `events` to `out` as repeated field 1 of a `BestPathBatch`.
    pub fn encode(&mut self, events: &[BestEvent], out: &mut Vec<u8>) {
        for event in events {
            self.path.clear();
            self.prefix.clear();
            write_prefix(&event.prefix, &mut self.prefix);
            encoding::string::encode(1, &self.prefix, &mut self.path);
            match &event.best {
                None => encoding::bool::encode(2, &true, &mut self.path),
                Some((next_hops, attributes)) => {
                    let tail = tail(&mut self.tails, next_hops.as_slice(), attributes);
                    self.path.extend_from_slice(tail);
                }
            }
            encode_path_field(&self.path, out);
        }
    }

    /// Drops the cached tails (and with them the attribute sets they hold).
    pub fn forget(&mut self) {
        self.tails.clear();
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

fn tail<'a>(
    tails: &'a mut Tails,
    next_hops: &[IpAddr],
    attributes: &Arc<PathAttributes>,
) -> &'a [u8] {
    let known = tails.entry(Arc::as_ptr(attributes) as usize).or_default();
    let position = match known.iter().position(|(_, hops, _)| hops == next_hops) {
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
            known.push((
                Arc::clone(attributes),
                next_hops.to_vec(),
                path.encode_to_vec(),
            ));
            known.len() - 1
        }
    };
    &known[position].2
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
    fn encodes_exactly_what_prost_writes_for_the_converted_paths() {
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
        let mut wire = Vec::new();
        encoder.encode(&events[..3], &mut wire);
        encoder.forget();
        encoder.encode(&events[3..], &mut wire);
        let expected = proto::BestPathBatch {
            paths: events.iter().map(best_to_proto).collect(),
            ..Default::default()
        };
        assert_eq!(wire, expected.encode_to_vec());
        let decoded = proto::BestPathBatch::decode(wire.as_slice()).unwrap();
        assert_eq!(decoded.paths, expected.paths);
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
}
