//! Runs the real `manul` binary as a runtime would: environment, stdin, stdout, exit code.
//! "Agent answers" cases serve a fake `Agent` gRPC service on a Unix socket in a tempdir,
//! which answers with canned responses or statuses and records what it received.

use std::{
    path::{Path, PathBuf},
    process::Output,
    sync::{Arc, Mutex},
};

use manul_proto::agent::{
    AddResponse, CheckResponse, CniRequest, DelResponse, GcRequest, GcResponse, Interface,
    IpConfig, ListEndpointsRequest, ListEndpointsResponse, Route, StatusRequest, StatusResponse,
    agent_server::{Agent, AgentServer},
};
use serde_json::Value;
use tempfile::TempDir;
use tonic::{Code, Request, Response, Status};

// ---------- the fake agent ----------

/// What the fake agent answers and what it was asked.
#[derive(Default)]
struct State {
    /// `None`: answer OK with `canned_add()`.
    fail_with: Option<(Code, String)>,
    not_ready: Option<String>,
    received: Vec<(&'static str, CniRequest)>,
    gc: Vec<GcRequest>,
    status: Vec<StatusRequest>,
}

#[derive(Clone, Default)]
struct FakeAgent(Arc<Mutex<State>>);

impl FakeAgent {
    fn answer<T>(&self, ok: T) -> Result<Response<T>, Status> {
        match &self.0.lock().unwrap().fail_with {
            Some((code, msg)) => Err(Status::new(*code, msg.clone())),
            None => Ok(Response::new(ok)),
        }
    }

    fn record(&self, rpc: &'static str, req: Request<CniRequest>) {
        self.0
            .lock()
            .unwrap()
            .received
            .push((rpc, req.into_inner()));
    }
}

fn canned_add() -> AddResponse {
    AddResponse {
        interfaces: vec![
            Interface {
                name: "cali0123456789a".into(),
                mac: "ee:ee:ee:ee:ee:ee".into(),
                sandbox: String::new(),
                mtu: 1450,
            },
            Interface {
                name: "eth0".into(),
                mac: "02:42:0a:f4:00:07".into(),
                sandbox: "/var/run/netns/pod1".into(),
                mtu: 1450,
            },
        ],
        ips: vec![IpConfig {
            address: "10.244.0.7/32".into(),
            gateway: "169.254.1.1".into(),
            interface: 1,
        }],
        routes: vec![Route {
            destination: "0.0.0.0/0".into(),
            gateway: "169.254.1.1".into(),
        }],
    }
}

#[tonic::async_trait]
impl Agent for FakeAgent {
    async fn add(&self, req: Request<CniRequest>) -> Result<Response<AddResponse>, Status> {
        self.record("Add", req);
        self.answer(canned_add())
    }

    async fn del(&self, req: Request<CniRequest>) -> Result<Response<DelResponse>, Status> {
        self.record("Del", req);
        self.answer(DelResponse::default())
    }

    async fn check(&self, req: Request<CniRequest>) -> Result<Response<CheckResponse>, Status> {
        self.record("Check", req);
        self.answer(CheckResponse::default())
    }

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let mut state = self.0.lock().unwrap();
        state.status.push(req.into_inner());
        Ok(Response::new(StatusResponse {
            ready: state.not_ready.is_none(),
            reason: state.not_ready.clone().unwrap_or_default(),
        }))
    }

    async fn gc(&self, req: Request<GcRequest>) -> Result<Response<GcResponse>, Status> {
        self.0.lock().unwrap().gc.push(req.into_inner());
        self.answer(GcResponse::default())
    }

    async fn list_endpoints(
        &self,
        _: Request<ListEndpointsRequest>,
    ) -> Result<Response<ListEndpointsResponse>, Status> {
        Ok(Response::new(ListEndpointsResponse::default()))
    }
}

/// A fake agent serving on `<tempdir>/agent.sock` until dropped.
struct Served {
    agent: FakeAgent,
    socket: PathBuf,
    _dir: TempDir,
    _rt: tokio::runtime::Runtime,
}

fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let agent = FakeAgent::default();
    let listener = {
        let _guard = rt.enter();
        tokio::net::UnixListener::bind(&socket).unwrap()
    };
    let service = AgentServer::new(agent.clone());
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    Served {
        agent,
        socket,
        _dir: dir,
        _rt: rt,
    }
}

impl Served {
    fn fail_with(&self, code: Code, msg: &str) {
        self.agent.0.lock().unwrap().fail_with = Some((code, msg.into()));
    }

    fn received(&self) -> Vec<(&'static str, CniRequest)> {
        self.agent.0.lock().unwrap().received.clone()
    }
}

// ---------- running the plugin ----------

fn config(version: &str, socket: &Path) -> String {
    format!(
        r#"{{"cniVersion":"{version}","name":"k8s-pod-network","type":"manul",
            "agent_socket":"{}","mtu":1450,
            "ipam":{{"type":"calico-ipam","assign_ipv4":"true","ipv4_pools":["10.244.0.0/16"]}},
            "runtimeConfig":{{"ips":["10.244.0.9"]}}}}"#,
        socket.display()
    )
}

const ADD_ENV: [(&str, &str); 6] = [
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "0123456789abcdef"),
    ("CNI_NETNS", "/var/run/netns/pod1"),
    ("CNI_IFNAME", "eth0"),
    ("CNI_PATH", "/opt/cni/bin"),
    (
        "CNI_ARGS",
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
         K8S_POD_INFRA_CONTAINER_ID=0123456789abcdef;K8S_POD_UID=u1;IP=10.244.0.8",
    ),
];

/// Runs `manul` with `env` (on top of ADD_ENV; a value of `None` removes the variable).
fn manul(env: &[(&str, Option<&str>)], stdin: &str) -> Output {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("manul");
    cmd.env_clear();
    for (k, v) in ADD_ENV {
        cmd.env(k, v);
    }
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.write_stdin(stdin.to_owned())
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a CNI error with `code` and returns its JSON.
fn error_json(out: &Output, code: u64) -> Value {
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(out));
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(out)));
    assert_eq!(json["code"], code, "{json}");
    assert!(
        json["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    json
}

fn msg(json: &Value) -> &str {
    json["msg"].as_str().unwrap_or_default()
}

fn no_agent() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("missing").join("agent.sock");
    (dir, socket)
}

// ---------- input errors (no agent needed) ----------

#[test]
fn malformed_json_is_code_6() {
    let out = manul(&[], "{\"cniVersion\": \"1.0.0\", ");
    let json = error_json(&out, 6);
    assert!(msg(&json).contains("line 1"), "{json}");
}

#[test]
fn unknown_version_is_code_1() {
    let (_d, socket) = no_agent();
    let out = manul(&[], &config("9.9.9", &socket));
    let json = error_json(&out, 1);
    assert!(msg(&json).contains("9.9.9"), "{json}");
}

#[test]
fn missing_netns_on_add_is_code_4() {
    let (_d, socket) = no_agent();
    let out = manul(&[("CNI_NETNS", None)], &config("1.0.0", &socket));
    let json = error_json(&out, 4);
    assert!(msg(&json).contains("CNI_NETNS"), "{json}");
    assert_eq!(json["cniVersion"], "1.0.0");
}

#[test]
fn missing_command_is_code_4_with_usage() {
    let out = manul(&[("CNI_COMMAND", None)], "");
    let json = error_json(&out, 4);
    assert!(msg(&json).contains("CNI_COMMAND"), "{json}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("manul"), "{stderr}");
    assert!(stderr.contains("CNI plugin"), "{stderr}");
}

#[test]
fn bad_field_is_code_7_naming_it() {
    let (_d, socket) = no_agent();
    let conf = config("1.0.0", &socket).replace("10.244.0.0/16", "10.244.0.0/40");
    let json = error_json(&manul(&[], &conf), 7);
    assert!(msg(&json).starts_with("ipam.ipv4_pools[0]"), "{json}");
}

#[test]
fn unknown_cni_args_are_code_4() {
    let (_d, socket) = no_agent();
    let out = manul(&[("CNI_ARGS", Some("FOO=bar"))], &config("1.0.0", &socket));
    let json = error_json(&out, 4);
    assert!(msg(&json).contains("CNI_ARGS"), "{json}");
}

#[test]
fn check_refused_for_0_3_1() {
    let (_d, socket) = no_agent();
    let out = manul(&[("CNI_COMMAND", Some("CHECK"))], &config("0.3.1", &socket));
    let json = error_json(&out, 1);
    assert_eq!(json["cniVersion"], "0.3.1");
}

#[test]
fn version_command() {
    for (stdin, echoed) in [("", "1.1.0"), (r#"{"cniVersion":"0.4.0"}"#, "0.4.0")] {
        let out = manul(&[("CNI_COMMAND", Some("VERSION"))], stdin);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            stdout(&out),
            format!(
                "{{\"cniVersion\":\"{echoed}\",\"supportedVersions\":[\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}}\n"
            )
        );
    }
}

// ---------- agent down ----------

#[test]
fn agent_socket_missing_is_code_11_for_add_and_del() {
    let (_d, socket) = no_agent();
    for command in ["ADD", "DEL"] {
        let out = manul(&[("CNI_COMMAND", Some(command))], &config("1.0.0", &socket));
        let json = error_json(&out, 11);
        assert!(msg(&json).contains(&socket.display().to_string()), "{json}");
        assert!(msg(&json).contains("manul-agent is running"), "{json}");
    }
}

#[test]
fn agent_not_listening_is_code_11_for_add_and_del() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    for command in ["ADD", "DEL"] {
        let out = manul(&[("CNI_COMMAND", Some(command))], &config("0.4.0", &socket));
        let json = error_json(&out, 11);
        assert_eq!(json["cniVersion"], "0.4.0");
        assert!(msg(&json).contains("refused"), "{json}");
    }
}

/// DEL with an empty CNI_NETNS while the agent is down is NOT reported as success: the
/// address is held in the agent's datastore, and succeeding would leak it. Code 11 makes the
/// runtime retry the DEL.
#[test]
fn del_with_empty_netns_and_agent_down_is_code_11() {
    let (_d, socket) = no_agent();
    let out = manul(
        &[("CNI_COMMAND", Some("DEL")), ("CNI_NETNS", Some(""))],
        &config("1.0.0", &socket),
    );
    error_json(&out, 11);
}

#[test]
fn status_with_agent_down_is_code_50() {
    let (_d, socket) = no_agent();
    let out = manul(
        &[("CNI_COMMAND", Some("STATUS"))],
        &config("1.1.0", &socket),
    );
    error_json(&out, 50);
}

// ---------- agent answers ----------

const RESULT_TAIL: &str = r#""routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}],"dns":{}}"#;

fn expected_result(version: &str) -> String {
    let (ifaces, ip) = match version {
        "0.3.1" | "0.4.0" => (
            r#"[{"name":"cali0123456789a","mac":"ee:ee:ee:ee:ee:ee"},{"name":"eth0","mac":"02:42:0a:f4:00:07","sandbox":"/var/run/netns/pod1"}]"#,
            r#"{"version":"4","interface":1,"address":"10.244.0.7/32","gateway":"169.254.1.1"}"#,
        ),
        "1.0.0" => (
            r#"[{"name":"cali0123456789a","mac":"ee:ee:ee:ee:ee:ee"},{"name":"eth0","mac":"02:42:0a:f4:00:07","sandbox":"/var/run/netns/pod1"}]"#,
            r#"{"interface":1,"address":"10.244.0.7/32","gateway":"169.254.1.1"}"#,
        ),
        _ => (
            r#"[{"name":"cali0123456789a","mac":"ee:ee:ee:ee:ee:ee","mtu":1450},{"name":"eth0","mac":"02:42:0a:f4:00:07","mtu":1450,"sandbox":"/var/run/netns/pod1"}]"#,
            r#"{"interface":1,"address":"10.244.0.7/32","gateway":"169.254.1.1"}"#,
        ),
    };
    format!(r#"{{"cniVersion":"{version}","interfaces":{ifaces},"ips":[{ip}],{RESULT_TAIL}"#) + "\n"
}

#[test]
fn add_prints_the_result_in_each_version() {
    let agent = serve();
    for version in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let out = manul(&[], &config(version, &agent.socket));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{version}: {} {}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout(&out), expected_result(version), "{version}");
    }
    assert_eq!(agent.received().len(), 4);
}

#[test]
fn add_request_carries_the_parsed_fields() {
    let agent = serve();
    let conf = config("1.0.0", &agent.socket).replace(
        r#""runtimeConfig":{"ips":["10.244.0.9"]}"#,
        r#""runtimeConfig":{"ips":["10.244.0.9/16"],
             "cni.projectcalico.org/ipAddrs":"[\"10.244.0.10\"]"}"#,
    );
    let out = manul(&[], &conf);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let received = agent.received();
    assert_eq!(received.len(), 1);
    let (rpc, req) = &received[0];
    assert_eq!(*rpc, "Add");
    assert_eq!(
        *req,
        CniRequest {
            container_id: "0123456789abcdef".into(),
            netns: "/var/run/netns/pod1".into(),
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: "web-0".into(),
            network_name: "k8s-pod-network".into(),
            mtu: 1450,
            assign_ipv4: true,
            assign_ipv6: false,
            ipv4_pools: vec!["10.244.0.0/16".into()],
            ipv6_pools: vec![],
            requested_ips: vec![
                "10.244.0.8".into(),
                "10.244.0.9".into(),
                "10.244.0.10".into()
            ],
            prev_result_ips: vec![],
        }
    );
}

#[test]
fn agent_statuses_map_to_cni_codes() {
    let agent = serve();
    let cases = [
        (Code::ResourceExhausted, 100),
        (Code::InvalidArgument, 7),
        (Code::AlreadyExists, 101),
        (Code::NotFound, 3),
        (Code::Unavailable, 11),
        (Code::Internal, 5),
    ];
    for (code, cni) in cases {
        agent.fail_with(code, "canned failure");
        let out = manul(&[], &config("1.0.0", &agent.socket));
        let json = error_json(&out, cni);
        assert_eq!(json["cniVersion"], "1.0.0");
        if cni != 11 {
            assert_eq!(msg(&json), "canned failure", "{json}");
        }
    }
}

#[test]
fn invalid_input_never_reaches_the_agent() {
    let agent = serve();
    let conf = config("1.0.0", &agent.socket);
    error_json(&manul(&[("CNI_IFNAME", None)], &conf), 4);
    error_json(&manul(&[], &conf.replace("\"mtu\":1450", "\"mtu\":9")), 7);
    error_json(
        &manul(
            &[("CNI_COMMAND", Some("CHECK"))],
            &config("0.3.1", &agent.socket),
        ),
        1,
    );
    assert!(agent.received().is_empty());
}

#[test]
fn del_with_empty_netns_succeeds_silently() {
    let agent = serve();
    let out = manul(
        &[
            ("CNI_COMMAND", Some("DEL")),
            ("CNI_NETNS", Some("")),
            ("CNI_PATH", None),
        ],
        &config("1.0.0", &agent.socket),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
    let received = agent.received();
    assert_eq!(received[0].0, "Del");
    assert_eq!(received[0].1.netns, "");
    // An agent that no longer knows the container: DEL still succeeds.
    agent.fail_with(Code::NotFound, "no such endpoint");
    let out = manul(
        &[("CNI_COMMAND", Some("DEL"))],
        &config("0.3.1", &agent.socket),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn check_sends_prev_result_addresses() {
    let agent = serve();
    let conf = config("0.4.0", &agent.socket).replace(
        r#""mtu":1450,"#,
        r#""mtu":1450,"prevResult":{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.244.0.7/32","interface":1}]},"#,
    );
    let out = manul(&[("CNI_COMMAND", Some("CHECK"))], &conf);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
    let received = agent.received();
    assert_eq!(received[0].0, "Check");
    assert_eq!(received[0].1.prev_result_ips, ["10.244.0.7/32"]);
}

#[test]
fn status_and_gc() {
    let agent = serve();
    let env = [("CNI_COMMAND", Some("STATUS")), ("CNI_CONTAINERID", None)];
    let out = manul(&env, &config("1.1.0", &agent.socket));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    agent.agent.0.lock().unwrap().not_ready = Some("no IP pools".into());
    let json = error_json(&manul(&env, &config("1.1.0", &agent.socket)), 50);
    assert!(msg(&json).contains("no IP pools"), "{json}");
    assert_eq!(
        agent.agent.0.lock().unwrap().status[0].network_name,
        "k8s-pod-network"
    );

    let conf = config("1.1.0", &agent.socket).replace(
        r#""mtu":1450,"#,
        r#""mtu":1450,"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"},{"containerID":"c2","ifname":"net1"}],"#,
    );
    let out = manul(&[("CNI_COMMAND", Some("GC"))], &conf);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let gc = agent.agent.0.lock().unwrap().gc.clone();
    assert_eq!(gc.len(), 1);
    assert_eq!(gc[0].network_name, "k8s-pod-network");
    let kept: Vec<_> = gc[0]
        .valid_attachments
        .iter()
        .map(|a| (a.container_id.as_str(), a.ifname.as_str()))
        .collect();
    assert_eq!(kept, [("c1", "eth0"), ("c2", "net1")]);
}
