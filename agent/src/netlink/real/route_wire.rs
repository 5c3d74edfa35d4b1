//! Route requests of a batch straight to netlink bytes, no I/O: each route's `rtmsg` and
//! attributes are written by hand into one buffer for the whole batch. Building a
//! `RouteMessage` per route (a vector of attributes, each emitted after two passes that compute
//! lengths) cost about half a microsecond a route, on the path that feeds the kernel a million
//! learned routes. The bytes are exactly those netlink-packet-route emits for the message
//! `route_message` builds (tested below); a shape this does not write by hand (an IPv4 route
//! through an IPv6 gateway, RFC 8950) goes through that message.
//!
//! | part | bytes |
//! |---|---|
//! | rtmsg | family, dst_len, src_len 0, tos 0, table (254 when the table is > 255), protocol 109, scope (link for a device route, nowhere for a deletion, else universe), type (unicast, blackhole), flags (u32; 4 = onlink) |
//! | RTA_DST (1) | the destination's address |
//! | RTA_TABLE (15) | u32, only for a table > 255 |
//! | RTA_PRIORITY (6) | u32, only for a metric other than 0 |
//! | RTA_GATEWAY (5) | one next hop's address |
//! | RTA_MULTIPATH (9) | per next hop: rtnexthop (len u16, flags u8 (4 = onlink), hops u8 0, ifindex u32) and its RTA_GATEWAY |
//! | RTA_OIF (4) | u32, the device of a route with one |
//!
//! Every attribute is a 4-byte header (length, type) and a value of 4 or 16 bytes, so nothing
//! needs padding. Numbers are in the host's byte order, as netlink wants them.

use std::net::IpAddr;

use ipnet::IpNet;

use super::route_batch::RouteRequest;
use crate::netlink::{NetlinkError, ROUTE_PROTOCOL, Route, RouteTarget};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const RT_TABLE_MAIN: u8 = 254;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
const RTN_UNICAST: u8 = 1;
const RTN_BLACKHOLE: u8 = 6;
const RTNH_F_ONLINK: u8 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;

/// The requests of one batch: their kind and their `rtmsg` + attributes, back to back.
#[derive(Default)]
pub(crate) struct RouteRequests {
    bodies: Vec<u8>,
    /// Kind, and where the body ends in `bodies` (it starts where the one before ends).
    items: Vec<(RouteRequest, usize)>,
}

impl RouteRequests {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Each request with its body, in order.
    pub fn iter(&self) -> impl Iterator<Item = (RouteRequest, &[u8])> + '_ {
        let mut start = 0;
        self.items.iter().map(move |&(request, end)| {
            let body = &self.bodies[start..end];
            start = end;
            (request, body)
        })
    }

    /// Appends the request for `route` (`indexes`: its devices' interface indexes, in the
    /// order of `route.target.devices()`). `Ok(false)`: not a shape written by hand, nothing
    /// was appended.
    pub fn push(
        &mut self,
        request: RouteRequest,
        route: &Route,
        indexes: &[u32],
    ) -> Result<bool, NetlinkError> {
        let destination = route.destination.trunc();
        let family = match destination {
            IpNet::V4(_) => AF_INET,
            IpNet::V6(_) => AF_INET6,
        };
        if let RouteTarget::Via(hops) = &route.target
            && hops.iter().any(|hop| family_of(hop.gateway) != family)
        {
            return Ok(false);
        }
        let (scope, kind, flags) = match &route.target {
            RouteTarget::Device(_) => (RT_SCOPE_LINK, RTN_UNICAST, 0),
            RouteTarget::Blackhole => (RT_SCOPE_UNIVERSE, RTN_BLACKHOLE, 0),
            RouteTarget::Via(hops) => {
                let onlink = hops.len() == 1 && hops[0].onlink;
                (
                    RT_SCOPE_UNIVERSE,
                    RTN_UNICAST,
                    u32::from(onlink) * u32::from(RTNH_F_ONLINK),
                )
            }
        };
        let scope = if request == RouteRequest::Delete {
            RT_SCOPE_NOWHERE
        } else {
            scope
        };
        let table = u8::try_from(route.table).unwrap_or(RT_TABLE_MAIN);
        let out = &mut self.bodies;
        out.extend_from_slice(&[
            family,
            destination.prefix_len(),
            0,
            0,
            table,
            ROUTE_PROTOCOL,
            scope,
            kind,
        ]);
        out.extend_from_slice(&flags.to_ne_bytes());
        address_attribute(out, RTA_DST, destination.addr());
        if route.table > 255 {
            attribute(out, RTA_TABLE, &route.table.to_ne_bytes());
        }
        if route.metric != 0 {
            attribute(out, RTA_PRIORITY, &route.metric.to_ne_bytes());
        }
        match &route.target {
            RouteTarget::Via(hops) if hops.len() == 1 => {
                address_attribute(out, RTA_GATEWAY, hops[0].gateway);
            }
            RouteTarget::Via(hops) => {
                let hop_length = |hop: &crate::netlink::NextHop| 8 + 4 + address_len(hop.gateway);
                let total: usize = hops.iter().map(hop_length).sum();
                attribute_header(out, RTA_MULTIPATH, total);
                for (hop, index) in hops.iter().zip(indexes) {
                    out.extend_from_slice(&(hop_length(hop) as u16).to_ne_bytes());
                    out.push(if hop.onlink { RTNH_F_ONLINK } else { 0 });
                    out.push(0);
                    out.extend_from_slice(&index.to_ne_bytes());
                    address_attribute(out, RTA_GATEWAY, hop.gateway);
                }
            }
            RouteTarget::Device(_) | RouteTarget::Blackhole => {}
        }
        let single_device = !matches!(&route.target, RouteTarget::Via(hops) if hops.len() > 1);
        if single_device && let Some(index) = indexes.first() {
            attribute(out, RTA_OIF, &index.to_ne_bytes());
        }
        self.items.push((request, out.len()));
        Ok(true)
    }

    /// Appends a request already built as a message (the shapes `push` leaves out).
    pub fn push_message(
        &mut self,
        request: RouteRequest,
        message: &rtnetlink::packet_route::route::RouteMessage,
    ) {
        use rtnetlink::packet_core::Emitable;
        let start = self.bodies.len();
        self.bodies.resize(start + message.buffer_len(), 0);
        message.emit(&mut self.bodies[start..]);
        self.items.push((request, self.bodies.len()));
    }
}

fn family_of(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

fn address_len(address: IpAddr) -> usize {
    match address {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 16,
    }
}

fn address_attribute(out: &mut Vec<u8>, kind: u16, address: IpAddr) {
    match address {
        IpAddr::V4(v4) => attribute(out, kind, &v4.octets()),
        IpAddr::V6(v6) => attribute(out, kind, &v6.octets()),
    }
}

fn attribute_header(out: &mut Vec<u8>, kind: u16, value_len: usize) {
    out.extend_from_slice(&((4 + value_len) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
}

fn attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    attribute_header(out, kind, value.len());
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;
    use rtnetlink::packet_core::Emitable;

    use super::super::routes::request_message;
    use super::*;
    use crate::netlink::NextHop;

    fn address(v6: bool, bits: u128) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(bits))
        } else {
            IpAddr::V4(Ipv4Addr::from(bits as u32))
        }
    }

    /// A route of any shape the agent writes: every target, tables below and above 255,
    /// metrics, onlink hops, one or several next hops, IPv4 and IPv6.
    fn any_route() -> impl Strategy<Value = (Route, Vec<u32>)> {
        (
            any::<bool>(),
            any::<u128>(),
            0u8..=128,
            prop_oneof![Just(254u32), Just(0), Just(100), Just(1000), Just(70_000)],
            prop_oneof![Just(0u32), Just(32), Just(1024)],
            0usize..3,
            prop::collection::vec((any::<u128>(), any::<bool>(), any::<u32>()), 1..4),
        )
            .prop_map(|(v6, bits, length, table, metric, kind, hops)| {
                let length = if v6 { length } else { length % 33 };
                let destination = IpNet::new(address(v6, bits), length).unwrap();
                let target = match kind {
                    0 => RouteTarget::Device("eth0".into()),
                    1 => RouteTarget::Blackhole,
                    _ => RouteTarget::via(
                        hops.iter()
                            .enumerate()
                            .map(|(index, (gateway, onlink, _))| NextHop {
                                gateway: address(v6, *gateway),
                                device: format!("eth{index}"),
                                onlink: *onlink,
                            })
                            .collect(),
                    ),
                };
                let indexes = target
                    .devices()
                    .zip(&hops)
                    .map(|(_, (_, _, index))| *index)
                    .collect();
                let route = Route {
                    table,
                    destination,
                    metric,
                    target,
                };
                (route, indexes)
            })
    }

    proptest! {
        #[test]
        fn writes_the_bytes_netlink_packet_route_emits(
            (route, indexes) in any_route(),
            request in prop_oneof![
                Just(RouteRequest::Add),
                Just(RouteRequest::Replace),
                Just(RouteRequest::Delete)
            ],
        ) {
            let mut requests = RouteRequests::default();
            prop_assert!(requests.push(request, &route, &indexes).unwrap());
            let message = request_message(request, &route, &indexes).unwrap();
            let mut expected = vec![0; message.buffer_len()];
            message.emit(&mut expected);
            let written: Vec<(RouteRequest, &[u8])> = requests.iter().collect();
            prop_assert_eq!(written, vec![(request, expected.as_slice())]);
        }
    }

    #[test]
    fn an_ipv4_route_through_an_ipv6_gateway_goes_through_the_message() {
        let route = Route::main(
            "10.1.0.0/24".parse().unwrap(),
            RouteTarget::via(vec![NextHop {
                gateway: "fe80::1".parse().unwrap(),
                device: "eth0".into(),
                onlink: false,
            }]),
        );
        let mut requests = RouteRequests::default();
        assert!(!requests.push(RouteRequest::Add, &route, &[2]).unwrap());
        assert_eq!(requests.len(), 0);
        let message = request_message(RouteRequest::Add, &route, &[2]).unwrap();
        requests.push_message(RouteRequest::Add, &message);
        let mut expected = vec![0; message.buffer_len()];
        message.emit(&mut expected);
        let written: Vec<(RouteRequest, &[u8])> = requests.iter().collect();
        assert_eq!(written, vec![(RouteRequest::Add, expected.as_slice())]);
    }
}
