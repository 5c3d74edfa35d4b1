//! Unit tests of `environment`: commands, required variables, CNI_ARGS. No I/O.

use super::*;

fn add_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/var/run/netns/p1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
}

fn without(vars: &[(&'static str, &'static str)], key: &str) -> EnvVars {
    EnvVars::from_pairs(vars.iter().copied().filter(|(k, _)| *k != key))
}

#[test]
fn kubelet_args() {
    let args = parse_cni_args(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
         K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1",
    )
    .unwrap();
    assert_eq!(
        args,
        CniArgs {
            ignore_unknown: true,
            ips: vec![],
            pod_namespace: "default".into(),
            pod_name: "web-0".into(),
            pod_infra_container_id: "abc".into(),
            pod_uid: "u-1".into(),
        }
    );
}

#[test]
fn ip_arg_accepts_lists_and_prefixes() {
    let args = parse_cni_args("IP=10.0.0.5/24, fd00::5").unwrap();
    assert_eq!(
        args.ips,
        vec![
            "10.0.0.5".parse::<IpAddr>().unwrap(),
            "fd00::5".parse().unwrap()
        ]
    );
    let err = parse_cni_args("IP=10.0.0.300").unwrap_err();
    assert_eq!(err.var(), "CNI_ARGS");
    assert!(err.to_string().contains("IP=\"10.0.0.300\""), "{err}");
}

#[test]
fn unknown_keys_need_ignore_unknown() {
    let err = parse_cni_args("K8S_POD_NAME=a;FOO=bar").unwrap_err();
    assert_eq!(
        err.to_string(),
        "CNI_ARGS: unknown key(s) FOO (add IgnoreUnknown=1 to ignore them)"
    );
    assert!(parse_cni_args("FOO=bar;IgnoreUnknown=true").is_ok());
    assert!(parse_cni_args("IgnoreUnknown=0;FOO=bar").is_err());
    assert!(parse_cni_args("IgnoreUnknown=maybe").is_err());
    assert!(parse_cni_args("noequals").is_err());
    assert_eq!(parse_cni_args("").unwrap(), CniArgs::default());
    assert_eq!(parse_cni_args(";;").unwrap(), CniArgs::default());
}

#[test]
fn add_needs_each_variable() {
    let vars = add_vars();
    for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"] {
        let err = Environment::parse(&without(&vars, var), Command::Add).unwrap_err();
        assert_eq!(err, EnvError::Missing { var }, "{var}");
    }
    let env = Environment::parse(&EnvVars::from_pairs(vars), Command::Add).unwrap();
    assert_eq!(env.netns, "/var/run/netns/p1");
    assert_eq!(env.ifname, "eth0");
}

#[test]
fn del_does_not_need_netns_or_path() {
    let vars = add_vars();
    let mut vars = without(&vars, "CNI_PATH");
    vars.0.insert("CNI_NETNS".into(), Some(String::new()));
    let env = Environment::parse(&vars, Command::Del).unwrap();
    assert_eq!(env.netns, "");
    let env = Environment::parse(&without(&add_vars(), "CNI_NETNS"), Command::Del).unwrap();
    assert_eq!(env.netns, "");
}

#[test]
fn bad_values_name_the_variable() {
    let cases = [
        ("CNI_CONTAINERID", "-abc"),
        ("CNI_CONTAINERID", "a b"),
        ("CNI_IFNAME", "a-very-long-ifname"),
        ("CNI_IFNAME", "eth/0"),
        ("CNI_IFNAME", ".."),
        ("CNI_NETNS", "relative/path"),
        ("CNI_ARGS", "IP=nope"),
    ];
    for (var, value) in cases {
        let mut pairs = add_vars();
        pairs.retain(|(k, _)| *k != var);
        pairs.push((var, value));
        let err = Environment::parse(&EnvVars::from_pairs(pairs), Command::Add).unwrap_err();
        assert_eq!(err.var(), var, "{var}={value}: {err}");
    }
}

#[test]
fn command_parsing() {
    assert_eq!(
        EnvVars::default().command(),
        Err(EnvError::Missing { var: "CNI_COMMAND" })
    );
    let vars = EnvVars::from_pairs([("CNI_COMMAND", "ADDD")]);
    assert_eq!(vars.command().unwrap_err().var(), "CNI_COMMAND");
    for c in ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"] {
        let vars = EnvVars::from_pairs([("CNI_COMMAND", c)]);
        assert_eq!(vars.command().unwrap().as_str(), c);
    }
}

#[test]
fn status_and_gc_need_nothing() {
    let vars = EnvVars::from_pairs([("CNI_COMMAND", "GC")]);
    assert!(Environment::parse(&vars, Command::Gc).is_ok());
    assert!(Environment::parse(&vars, Command::Status).is_ok());
}
