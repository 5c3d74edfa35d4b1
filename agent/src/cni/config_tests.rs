//! Unit tests of `config`: each bad field is named in the error. No I/O.

use super::*;

fn parse(json: &str) -> Result<NetConf, ConfigError> {
    NetConf::parse(json.as_bytes())
}

fn field_error(json: &str) -> (String, String) {
    match parse(json) {
        Err(ConfigError::Field { field, reason }) => (field, reason),
        other => panic!("expected a field error for {json}, got {other:?}"),
    }
}

const MIN: &str = r#"{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"manul"}"#;

#[test]
fn minimal_config_gets_defaults() {
    let conf = parse(MIN).unwrap();
    assert_eq!(conf.cni_version, CniVersion::V1_0_0);
    assert_eq!(conf.name, "k8s-pod-network");
    assert_eq!(conf.plugin_type, "manul");
    assert_eq!(
        conf.agent_socket,
        PathBuf::from("/var/run/manul/agent.sock")
    );
    assert_eq!(conf.mtu, 0);
    assert_eq!(
        conf.ipam,
        IpamConf {
            assign_ipv4: true,
            assign_ipv6: false,
            ipv4_pools: vec![],
            ipv6_pools: vec![],
        }
    );
    assert_eq!(conf.prev_result_ips, None);
    assert!(conf.requested_ips.is_empty());
    assert_eq!(conf.valid_attachments, None);
}

#[test]
fn full_config() {
    let conf = parse(
        r#"{"cniVersion":"1.1.0","name":"net","type":"manul","agent_socket":"/tmp/a.sock",
            "mtu":1450,"log_level":"info",
            "ipam":{"type":"calico-ipam","assign_ipv4":"true","assign_ipv6":true,
                    "ipv4_pools":["10.244.0.0/16","default-ipv4-ippool"],
                    "ipv6_pools":["fd00:10:244::/64"]},
            "args":{"cni":{"ips":["10.244.0.7"]}},
            "runtimeConfig":{"ips":["10.244.0.8/16","10.244.0.7"],
               "annotations":{"cni.projectcalico.org/ipAddrs":"[\"fd00:10:244::9\"]"}},
            "prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.244.0.7/32","interface":1}]},
            "cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
    )
    .unwrap();
    assert_eq!(conf.agent_socket, PathBuf::from("/tmp/a.sock"));
    assert_eq!(conf.mtu, 1450);
    assert!(conf.ipam.assign_ipv4 && conf.ipam.assign_ipv6);
    assert_eq!(
        conf.ipam.ipv4_pools,
        ["10.244.0.0/16", "default-ipv4-ippool"]
    );
    assert_eq!(conf.ipam.ipv6_pools, ["fd00:10:244::/64"]);
    let ips: Vec<String> = conf.requested_ips.iter().map(|i| i.to_string()).collect();
    assert_eq!(ips, ["10.244.0.7", "10.244.0.8", "fd00:10:244::9"]);
    assert_eq!(conf.prev_result_ips, Some(vec!["10.244.0.7/32".to_owned()]));
    assert_eq!(
        conf.valid_attachments,
        Some(vec![ValidAttachment {
            container_id: "c1".into(),
            ifname: "eth0".into()
        }])
    );
}

#[test]
fn annotation_in_args_and_as_list() {
    let conf = parse(
        r#"{"cniVersion":"1.0.0","name":"n","type":"manul",
            "args":{"cni":{"cni.projectcalico.org/ipAddrs":"[\"10.0.0.1\"]"}},
            "runtimeConfig":{"cni.projectcalico.org/ipAddrs":["10.0.0.2"]}}"#,
    )
    .unwrap();
    let ips: Vec<String> = conf.requested_ips.iter().map(|i| i.to_string()).collect();
    assert_eq!(ips, ["10.0.0.2", "10.0.0.1"]);
}

#[test]
fn decode_errors() {
    for bad in ["", "  \n", "{", "[1,2]", "\"x\"", "{\"cniVersion\":}"] {
        assert!(
            matches!(parse(bad), Err(ConfigError::Decode(_))),
            "{bad:?}: {:?}",
            parse(bad)
        );
    }
    let Err(ConfigError::Decode(msg)) = parse("{\n \"a\": ,\n}") else {
        panic!()
    };
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn version_errors() {
    assert_eq!(
        parse(r#"{"name":"n","type":"manul"}"#),
        Err(ConfigError::Version(VersionError::Missing))
    );
    assert_eq!(
        parse(r#"{"cniVersion":"9.9.9","name":"n","type":"manul"}"#),
        Err(ConfigError::Version(VersionError::Unsupported(
            "9.9.9".into()
        )))
    );
    assert_eq!(field_error(r#"{"cniVersion":1}"#).0, "cniVersion");
}

#[test]
fn each_field_error_names_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#""name":"n""#, "type"),
        (r#""type":"manul""#, "name"),
        (r#""name":"-bad","type":"manul""#, "name"),
        (r#""name":5,"type":"manul""#, "name"),
        (r#""name":"n","type":["manul"]"#, "type"),
        (
            r#""name":"n","type":"manul","agent_socket":"rel.sock""#,
            "agent_socket",
        ),
        (r#""name":"n","type":"manul","mtu":70000"#, "mtu"),
        (r#""name":"n","type":"manul","mtu":-1"#, "mtu"),
        (r#""name":"n","type":"manul","mtu":"1500""#, "mtu"),
        (r#""name":"n","type":"manul","ipam":[]"#, "ipam"),
        (
            r#""name":"n","type":"manul","ipam":{"assign_ipv4":"yes"}"#,
            "ipam.assign_ipv4",
        ),
        (
            r#""name":"n","type":"manul","ipam":{"ipv4_pools":["10.0.0.0/33"]}"#,
            "ipam.ipv4_pools[0]",
        ),
        (
            r#""name":"n","type":"manul","ipam":{"ipv4_pools":["10.0.0.0/8","10.1.0.5/16"]}"#,
            "ipam.ipv4_pools[1]",
        ),
        (
            r#""name":"n","type":"manul","ipam":{"ipv4_pools":["fd00::/64"]}"#,
            "ipam.ipv4_pools[0]",
        ),
        (
            r#""name":"n","type":"manul","ipam":{"ipv6_pools":["Bad_Name"]}"#,
            "ipam.ipv6_pools[0]",
        ),
        (
            r#""name":"n","type":"manul","ipam":{"ipv6_pools":"fd00::/64"}"#,
            "ipam.ipv6_pools",
        ),
        (
            r#""name":"n","type":"manul","runtimeConfig":{"ips":["10.0.0.1","x"]}"#,
            "runtimeConfig.ips[1]",
        ),
        (
            r#""name":"n","type":"manul","runtimeConfig":{"ips":["10.0.0.1/40"]}"#,
            "runtimeConfig.ips[0]",
        ),
        (
            r#""name":"n","type":"manul","args":{"cni":{"ips":[7]}}"#,
            "args.cni.ips[0]",
        ),
        (
            r#""name":"n","type":"manul","args":{"cni":"x"}"#,
            "args.cni",
        ),
        (
            r#""name":"n","type":"manul","runtimeConfig":{"annotations":{"cni.projectcalico.org/ipAddrs":"10.0.0.1"}}"#,
            r#"runtimeConfig.annotations["cni.projectcalico.org/ipAddrs"]"#,
        ),
        (
            r#""name":"n","type":"manul","runtimeConfig":{"cni.projectcalico.org/ipAddrs":"[\"nope\"]"}"#,
            r#"runtimeConfig["cni.projectcalico.org/ipAddrs"][0]"#,
        ),
        (
            r#""name":"n","type":"manul","prevResult":{"ips":[{"address":"10.0.0.1"}]}"#,
            "prevResult.ips[0].address",
        ),
        (
            r#""name":"n","type":"manul","prevResult":{"ips":[{}]}"#,
            "prevResult.ips[0].address",
        ),
        (
            r#""name":"n","type":"manul","cni.dev/valid-attachments":[{"containerID":"c"}]"#,
            "cni.dev/valid-attachments[0].ifname",
        ),
        (
            r#""name":"n","type":"manul","cni.dev/valid-attachments":{}"#,
            "cni.dev/valid-attachments",
        ),
    ];
    for (body, want) in cases {
        let json = format!(r#"{{"cniVersion":"1.0.0",{body}}}"#);
        let (field, reason) = field_error(&json);
        assert_eq!(&field, want, "{json}: {reason}");
        let shown = parse(&json).unwrap_err().to_string();
        assert!(shown.starts_with(want), "{shown}");
    }
}

#[test]
fn pool_messages() {
    let (_, reason) = field_error(
        r#"{"cniVersion":"1.0.0","name":"n","type":"manul","ipam":{"ipv4_pools":["10.0.0.0/33"]}}"#,
    );
    assert_eq!(reason, "\"10.0.0.0/33\": not a CIDR");
    let (_, reason) = field_error(
        r#"{"cniVersion":"1.0.0","name":"n","type":"manul","ipam":{"ipv4_pools":["10.1.0.5/16"]}}"#,
    );
    assert_eq!(
        reason,
        "\"10.1.0.5/16\": host bits set (did you mean 10.1.0.0/16?)"
    );
}

#[test]
fn unknown_ipam_keys_are_unsupported() {
    let err = parse(
        r#"{"cniVersion":"1.0.0","name":"n","type":"manul","ipam":{"type":"host-local","subnet":"usePodCidr"}}"#,
    )
    .unwrap_err();
    assert_eq!(
        err,
        ConfigError::Unsupported {
            field: "ipam.subnet".into()
        }
    );
}

#[test]
fn never_panics_on_odd_input() {
    let odd = [
        "null",
        "{}",
        r#"{"cniVersion":null}"#,
        r#"{"cniVersion":"1.0.0","name":"n","type":"manul","prevResult":{"ips":"x"}}"#,
        r#"{"cniVersion":"1.0.0","name":"n","type":"manul","prevResult":{"ips":[1]}}"#,
        r#"{"cniVersion":"1.0.0","name":"n","type":"manul","mtu":1e9}"#,
        r#"{"cniVersion":"1.0.0","name":"n","type":"manul","runtimeConfig":{"annotations":5}}"#,
        "\u{feff}{}",
    ];
    for input in odd {
        let _ = parse(input);
    }
}
