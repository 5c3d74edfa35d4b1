//! Unit tests of `plugin::prepare`: order of checks, codes, and the request built. No I/O.

use super::*;

const CONF: &str = r#"{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"manul",
    "agent_socket":"/run/test/agent.sock","mtu":1400,
    "ipam":{"ipv4_pools":["10.244.0.0/16"]},
    "runtimeConfig":{"ips":["10.244.1.9"]}}"#;

fn vars(command: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", command.to_owned()),
        ("CNI_CONTAINERID", "ctr1".to_owned()),
        ("CNI_NETNS", "/var/run/netns/p1".to_owned()),
        ("CNI_IFNAME", "eth0".to_owned()),
        ("CNI_PATH", "/opt/cni/bin".to_owned()),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IP=10.244.1.8".to_owned(),
        ),
    ]
}

fn env(pairs: &[(&'static str, String)]) -> EnvVars {
    EnvVars::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
}

fn failure(pairs: &[(&'static str, String)], stdin: &str) -> Failure {
    match prepare(&env(pairs), stdin.as_bytes()) {
        Err(f) => f,
        Ok(inv) => panic!("expected a failure, got {inv:?}"),
    }
}

fn call(pairs: &[(&'static str, String)], stdin: &str) -> Call {
    match prepare(&env(pairs), stdin.as_bytes()) {
        Ok(Invocation::Call(call)) => *call,
        other => panic!("expected a call, got {other:?}"),
    }
}

#[test]
fn add_request_carries_every_field() {
    let call = call(&vars("ADD"), CONF);
    assert_eq!(call.command, Command::Add);
    assert_eq!(call.version, CniVersion::V1_0_0);
    assert_eq!(call.socket, PathBuf::from("/run/test/agent.sock"));
    assert_eq!(
        call.request,
        Request::Cni(CniRequest {
            container_id: "ctr1".into(),
            netns: "/var/run/netns/p1".into(),
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: "web-0".into(),
            network_name: "k8s-pod-network".into(),
            mtu: 1400,
            assign_ipv4: true,
            assign_ipv6: false,
            ipv4_pools: vec!["10.244.0.0/16".into()],
            ipv6_pools: vec![],
            requested_ips: vec!["10.244.1.8".into(), "10.244.1.9".into()],
            prev_result_ips: vec![],
        })
    );
}

#[test]
fn missing_command_is_code_4_without_reading_config() {
    let mut pairs = vars("ADD");
    pairs.retain(|(k, _)| *k != "CNI_COMMAND");
    let f = failure(&pairs, "not json");
    assert_eq!(f.error.code(), 4);
    assert!(f.error.msg.contains("CNI_COMMAND"));
    assert_eq!(f.version, None);
}

#[test]
fn decode_comes_before_environment() {
    let mut pairs = vars("ADD");
    pairs.retain(|(k, _)| *k != "CNI_NETNS");
    assert_eq!(failure(&pairs, "{oops").error.code(), 6);
    let f = failure(&pairs, CONF);
    assert_eq!(f.error.code(), 4);
    assert_eq!(f.error.msg, "CNI_NETNS is not set");
    assert_eq!(f.version, Some(CniVersion::V1_0_0));
}

#[test]
fn version_gates_commands() {
    let v031 = CONF.replace("1.0.0", "0.3.1");
    let f = failure(&vars("CHECK"), &v031);
    assert_eq!(f.error.code(), 1);
    assert_eq!(f.version, Some(CniVersion::V0_3_1));
    assert_eq!(failure(&vars("STATUS"), CONF).error.code(), 1);
    assert_eq!(failure(&vars("GC"), CONF).error.code(), 1);
    let f = failure(&vars("ADD"), &CONF.replace("1.0.0", "9.9.9"));
    assert_eq!(f.error.code(), 1);
    assert_eq!(f.version, None);
}

#[test]
fn check_needs_prev_result() {
    let f = failure(&vars("CHECK"), CONF);
    assert_eq!(f.error.code(), 7);
    assert!(f.error.msg.starts_with("prevResult"));
    let conf = CONF.replace(
        r#""mtu":1400,"#,
        r#""mtu":1400,"prevResult":{"ips":[{"address":"10.244.1.8/32","interface":1}]},"#,
    );
    let Request::Cni(req) = call(&vars("CHECK"), &conf).request else {
        panic!()
    };
    assert_eq!(req.prev_result_ips, ["10.244.1.8/32"]);
}

#[test]
fn del_without_netns() {
    let mut pairs = vars("DEL");
    pairs.retain(|(k, _)| *k != "CNI_NETNS" && *k != "CNI_PATH");
    pairs.push(("CNI_NETNS", String::new()));
    let Request::Cni(req) = call(&pairs, CONF).request else {
        panic!()
    };
    assert_eq!(req.netns, "");
    assert_eq!(req.container_id, "ctr1");
}

#[test]
fn status_and_gc_requests() {
    let v11 = CONF.replace("1.0.0", "1.1.0");
    let status = call(&[("CNI_COMMAND", "STATUS".to_owned())], &v11);
    assert_eq!(
        status.request,
        Request::Status(StatusRequest {
            network_name: "k8s-pod-network".into()
        })
    );
    let f = failure(&[("CNI_COMMAND", "GC".to_owned())], &v11);
    assert_eq!(f.error.code(), 7);
    assert!(f.error.msg.starts_with("cni.dev/valid-attachments"));
    let gc_conf = v11.replace(
        r#""mtu":1400,"#,
        r#""mtu":1400,"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],"#,
    );
    let gc = call(&[("CNI_COMMAND", "GC".to_owned())], &gc_conf);
    assert_eq!(
        gc.request,
        Request::Gc(GcRequest {
            network_name: "k8s-pod-network".into(),
            valid_attachments: vec![Attachment {
                container_id: "a".into(),
                ifname: "eth0".into()
            }],
        })
    );
}

#[test]
fn version_never_fails() {
    for stdin in [
        "",
        "garbage",
        r#"{"cniVersion":"0.4.0"}"#,
        r#"{"cniVersion":"9"}"#,
    ] {
        let inv = prepare(
            &EnvVars::from_pairs([("CNI_COMMAND", "VERSION")]),
            stdin.as_bytes(),
        );
        assert!(matches!(inv, Ok(Invocation::Version(_))), "{stdin}");
    }
}

#[test]
fn config_errors_keep_their_code() {
    let unsupported = CONF.replace(r#""ipam":{"#, r#""ipam":{"subnet":"usePodCidr","#);
    assert_eq!(failure(&vars("ADD"), &unsupported).error.code(), 2);
    let bad_pool = CONF.replace("10.244.0.0/16", "10.244.0.0/99");
    let f = failure(&vars("ADD"), &bad_pool);
    assert_eq!(f.error.code(), 7);
    assert_eq!(
        f.error.msg,
        "ipam.ipv4_pools[0]: \"10.244.0.0/99\": not a CIDR"
    );
}

#[tokio::test]
async fn run_prints_error_json_with_config_version() {
    let mut pairs = vars("ADD");
    pairs.retain(|(k, _)| *k != "CNI_IFNAME");
    let out = run(&env(&pairs), CONF.replace("1.0.0", "0.4.0").as_bytes()).await;
    assert_eq!(out.exit_code, 1);
    assert_eq!(
        out.stdout,
        "{\"cniVersion\":\"0.4.0\",\"code\":4,\"msg\":\"CNI_IFNAME is not set\"}\n"
    );
}

#[tokio::test]
async fn run_reports_unreachable_agent_as_11() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let conf = CONF.replace("/run/test/agent.sock", &sock.display().to_string());
    let out = run(&env(&vars("ADD")), conf.as_bytes()).await;
    assert_eq!(out.exit_code, 1);
    let err = out.error.unwrap();
    assert_eq!(err.code(), 11);
    assert!(err.msg.contains(&sock.display().to_string()), "{}", err.msg);
    let status_conf = conf.replace("1.0.0", "1.1.0");
    let out = run(&env(&vars("STATUS")), status_conf.as_bytes()).await;
    assert_eq!(out.error.unwrap().code(), 50);
}

#[test]
fn add_needs_something_to_assign() {
    let none = CONF.replace(r#""ipam":{"#, r#""ipam":{"assign_ipv4":false,"#);
    // runtimeConfig.ips and IP= still ask for addresses: fine.
    assert!(matches!(
        prepare(&env(&vars("ADD")), none.as_bytes()),
        Ok(Invocation::Call(_))
    ));
    let none = none.replace(r#""runtimeConfig":{"ips":["10.244.1.9"]}"#, r#""x":1"#);
    let mut pairs = vars("ADD");
    pairs.retain(|(k, _)| *k != "CNI_ARGS");
    let f = failure(&pairs, &none);
    assert_eq!(f.error.code(), 7);
    assert!(
        f.error.msg.starts_with("ipam.assign_ipv4"),
        "{}",
        f.error.msg
    );
    // DEL of such a config still goes through.
    assert!(matches!(
        prepare(&env(&vars("DEL")), none.as_bytes()),
        Ok(Invocation::Call(_))
    ));
}
