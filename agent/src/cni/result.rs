//! The CNI result of ADD, built from the agent's `AddResponse` in the shape of the config's
//! version. No I/O.
//!
//! Field order follows the reference implementation (containernetworking/cni `types/040` and
//! `types/100`), so results diff cleanly against other plugins': `cniVersion, interfaces, ips,
//! routes, dns`; in an ip entry `version` (0.3.1/0.4.0 only), `interface`, `address`,
//! `gateway`; in an interface `name, mac, mtu` (1.1.0 only), `sandbox`. Empty optional fields
//! are omitted; `dns` is always `{}` (the runtime sets the pod's resolv.conf).

use std::net::IpAddr;

use ipnet::IpNet;
use manul_proto::agent::AddResponse;
use serde::Serialize;

use super::version::CniVersion;

/// The agent's answer cannot be turned into a CNI result (reported as code 5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error(
        "manul-agent returned an unusable result: ips[{index}].address {value:?} is not an address with prefix length"
    )]
    BadAddress { index: usize, value: String },
    #[error(
        "manul-agent returned an unusable result: ips[{index}].gateway {value:?} is not an address"
    )]
    BadGateway { index: usize, value: String },
    #[error(
        "manul-agent returned an unusable result: ips[{index}].interface {value} is not an index into {count} interfaces"
    )]
    BadInterface {
        index: usize,
        value: i32,
        count: usize,
    },
    #[error("manul-agent returned an unusable result: routes[{index}].dst {value:?} is not a CIDR")]
    BadRoute { index: usize, value: String },
    #[error("manul-agent returned an unusable result: interfaces[{index}] has no name")]
    NoInterfaceName { index: usize },
}

#[derive(Serialize)]
struct ResultJson<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'static str,
    interfaces: Vec<InterfaceJson<'a>>,
    ips: Vec<IpJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<RouteJson<'a>>,
    dns: Dns,
}

#[derive(Serialize)]
struct InterfaceJson<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    mac: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(skip_serializing_if = "str::is_empty")]
    sandbox: &'a str,
}

#[derive(Serialize)]
struct IpJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    interface: usize,
    address: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    gateway: &'a str,
}

#[derive(Serialize)]
struct RouteJson<'a> {
    dst: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    gw: &'a str,
}

#[derive(Serialize)]
struct Dns {}

/// Renders the ADD result for `version` (compact JSON, no trailing newline).
pub fn render_add(resp: &AddResponse, version: CniVersion) -> Result<String, ResultError> {
    let mut interfaces = Vec::with_capacity(resp.interfaces.len());
    for (index, i) in resp.interfaces.iter().enumerate() {
        if i.name.is_empty() {
            return Err(ResultError::NoInterfaceName { index });
        }
        interfaces.push(InterfaceJson {
            name: &i.name,
            mac: &i.mac,
            mtu: (version.interfaces_have_mtu() && i.mtu != 0).then_some(i.mtu),
            sandbox: &i.sandbox,
        });
    }
    let mut ips = Vec::with_capacity(resp.ips.len());
    for (index, ip) in resp.ips.iter().enumerate() {
        let net: IpNet = ip.address.parse().map_err(|_| ResultError::BadAddress {
            index,
            value: ip.address.clone(),
        })?;
        if !ip.gateway.is_empty() && ip.gateway.parse::<IpAddr>().is_err() {
            return Err(ResultError::BadGateway {
                index,
                value: ip.gateway.clone(),
            });
        }
        let interface = usize::try_from(ip.interface)
            .ok()
            .filter(|i| *i < interfaces.len())
            .ok_or(ResultError::BadInterface {
                index,
                value: ip.interface,
                count: interfaces.len(),
            })?;
        let family = match net {
            IpNet::V4(_) => "4",
            IpNet::V6(_) => "6",
        };
        ips.push(IpJson {
            version: version.ip_entries_have_version().then_some(family),
            interface,
            address: net.to_string(),
            gateway: &ip.gateway,
        });
    }
    let mut routes = Vec::with_capacity(resp.routes.len());
    for (index, r) in resp.routes.iter().enumerate() {
        let dst: IpNet = r.destination.parse().map_err(|_| ResultError::BadRoute {
            index,
            value: r.destination.clone(),
        })?;
        routes.push(RouteJson {
            dst: dst.to_string(),
            gw: &r.gateway,
        });
    }
    let result = ResultJson {
        cni_version: version.as_str(),
        interfaces,
        ips,
        routes,
        dns: Dns {},
    };
    // Plain strings and numbers: serialising cannot fail.
    Ok(serde_json::to_string(&result).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use manul_proto::agent::{Interface, IpConfig, Route};

    use super::*;

    /// What the agent answers for a dual-stack pod.
    fn response() -> AddResponse {
        AddResponse {
            interfaces: vec![
                Interface {
                    name: "cali1234567890a".into(),
                    mac: "ee:ee:ee:ee:ee:ee".into(),
                    sandbox: String::new(),
                    mtu: 1500,
                },
                Interface {
                    name: "eth0".into(),
                    mac: "0a:58:0a:f4:00:07".into(),
                    sandbox: "/var/run/netns/p1".into(),
                    mtu: 1500,
                },
            ],
            ips: vec![
                IpConfig {
                    address: "10.244.0.7/32".into(),
                    gateway: "169.254.1.1".into(),
                    interface: 1,
                },
                IpConfig {
                    address: "fd00:10:244::7/128".into(),
                    gateway: "fe80::ecee:eeff:feee:eeee".into(),
                    interface: 1,
                },
            ],
            routes: vec![
                Route {
                    destination: "0.0.0.0/0".into(),
                    gateway: "169.254.1.1".into(),
                },
                Route {
                    destination: "::/0".into(),
                    gateway: "fe80::ecee:eeff:feee:eeee".into(),
                },
            ],
        }
    }

    const IFACES: &str = r#""interfaces":[{"name":"cali1234567890a","mac":"ee:ee:ee:ee:ee:ee"},{"name":"eth0","mac":"0a:58:0a:f4:00:07","sandbox":"/var/run/netns/p1"}]"#;
    const IFACES_MTU: &str = r#""interfaces":[{"name":"cali1234567890a","mac":"ee:ee:ee:ee:ee:ee","mtu":1500},{"name":"eth0","mac":"0a:58:0a:f4:00:07","mtu":1500,"sandbox":"/var/run/netns/p1"}]"#;
    const ROUTES: &str = r#""routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"},{"dst":"::/0","gw":"fe80::ecee:eeff:feee:eeee"}],"dns":{}}"#;

    fn expected(version: &str, ifaces: &str, with_family: bool) -> String {
        let (v4, v6) = if with_family {
            (r#""version":"4","#, r#""version":"6","#)
        } else {
            ("", "")
        };
        format!(
            r#"{{"cniVersion":"{version}",{ifaces},"ips":[{{{v4}"interface":1,"address":"10.244.0.7/32","gateway":"169.254.1.1"}},{{{v6}"interface":1,"address":"fd00:10:244::7/128","gateway":"fe80::ecee:eeff:feee:eeee"}}],{ROUTES}"#
        )
    }

    #[test]
    fn result_0_3_1() {
        assert_eq!(
            render_add(&response(), CniVersion::V0_3_1).unwrap(),
            expected("0.3.1", IFACES, true)
        );
    }

    #[test]
    fn result_0_4_0() {
        assert_eq!(
            render_add(&response(), CniVersion::V0_4_0).unwrap(),
            expected("0.4.0", IFACES, true)
        );
    }

    #[test]
    fn result_1_0_0() {
        assert_eq!(
            render_add(&response(), CniVersion::V1_0_0).unwrap(),
            expected("1.0.0", IFACES, false)
        );
    }

    #[test]
    fn result_1_1_0() {
        assert_eq!(
            render_add(&response(), CniVersion::V1_1_0).unwrap(),
            expected("1.1.0", IFACES_MTU, false)
        );
    }

    #[test]
    fn written_out_1_0_0_ipv4_only() {
        let mut resp = response();
        resp.ips.truncate(1);
        resp.routes.truncate(1);
        resp.interfaces[0].mac.clear();
        resp.ips[0].gateway.clear();
        resp.routes[0].gateway.clear();
        assert_eq!(
            render_add(&resp, CniVersion::V1_0_0).unwrap(),
            r#"{"cniVersion":"1.0.0","interfaces":[{"name":"cali1234567890a"},{"name":"eth0","mac":"0a:58:0a:f4:00:07","sandbox":"/var/run/netns/p1"}],"ips":[{"interface":1,"address":"10.244.0.7/32"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}"#
        );
    }

    #[test]
    fn bad_agent_answers_are_errors() {
        let mut r = response();
        r.ips[0].interface = 2;
        assert!(matches!(
            render_add(&r, CniVersion::V1_0_0),
            Err(ResultError::BadInterface { value: 2, .. })
        ));
        let mut r = response();
        r.ips[1].interface = -1;
        assert!(render_add(&r, CniVersion::V1_0_0).is_err());
        let mut r = response();
        r.ips[0].address = "10.244.0.7".into();
        assert!(matches!(
            render_add(&r, CniVersion::V1_0_0),
            Err(ResultError::BadAddress { index: 0, .. })
        ));
        let mut r = response();
        r.ips[0].gateway = "gw".into();
        assert!(render_add(&r, CniVersion::V1_0_0).is_err());
        let mut r = response();
        r.routes[1].destination = "default".into();
        assert!(render_add(&r, CniVersion::V1_0_0).is_err());
        let mut r = response();
        r.interfaces[0].name.clear();
        assert!(render_add(&r, CniVersion::V1_0_0).is_err());
    }
}
