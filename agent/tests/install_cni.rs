//! `manul-agent install-cni` as the DaemonSet's init container runs it, against a temporary
//! host root: it installs the plugin binary and a conflist that the real `manul` plugin
//! accepts, and a second run changes nothing.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::SystemTime,
};

use serde_json::{Map, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_manul-agent");
const PLUGIN: &str = env!("CARGO_BIN_EXE_manul");

fn install(host_root: &Path, extra: &[&str]) -> Output {
    let output = Command::new(AGENT)
        .arg("install-cni")
        .arg("--host-root")
        .arg(host_root)
        .args(["--plugin-binary", PLUGIN])
        .args(extra)
        .env_remove("MANUL_AGENT_SOCKET")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "install-cni failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// Runs the installed plugin as a runtime runs a conflist's first plugin: the entry with the
/// list's cniVersion and name added, on stdin.
fn run_plugin(plugin: &Path, config: &Value, env: &[(&str, &str)]) -> (Output, Value) {
    let mut child = Command::new(plugin)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let answer = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, answer)
}

fn first_plugin_config(conflist: &Value) -> Value {
    let mut config: Map<String, Value> = conflist["plugins"][0].as_object().unwrap().clone();
    config.insert("cniVersion".into(), conflist["cniVersion"].clone());
    config.insert("name".into(), conflist["name"].clone());
    Value::Object(config)
}

#[test]
fn installs_a_conflist_the_plugin_accepts_and_is_idempotent() {
    let host = tempfile::tempdir().unwrap();
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("agent.sock");
    let socket_flag = ["--agent-socket", socket.to_str().unwrap()];
    let output = install(host.path(), &socket_flag);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("installed"), "{stdout}");

    let plugin: PathBuf = host.path().join("opt/cni/bin/manul");
    let conflist_path = host.path().join("etc/cni/net.d/10-manul.conflist");
    assert_eq!(
        std::fs::read(&plugin).unwrap(),
        std::fs::read(PLUGIN).unwrap()
    );
    let conflist: Value =
        serde_json::from_str(&std::fs::read_to_string(&conflist_path).unwrap()).unwrap();
    assert_eq!(conflist["cniVersion"], "1.0.0");
    assert_eq!(conflist["plugins"][0]["type"], "manul");
    assert_eq!(conflist["plugins"][0]["mtu"], 0);
    assert_eq!(conflist["plugins"][1]["type"], "portmap");

    // The installed binary runs and speaks the conflist's version.
    let config = first_plugin_config(&conflist);
    let (output, version) = run_plugin(&plugin, &config, &[("CNI_COMMAND", "VERSION")]);
    assert!(output.status.success(), "{version}");
    let supported = version["supportedVersions"].as_array().unwrap();
    assert!(supported.contains(&conflist["cniVersion"]), "{version}");

    // A DEL with this config gets past the plugin's config validation (codes 1, 2, 6, 7 would
    // mean a refused config) and stops only at the missing agent: code 11, try again.
    let (output, error) = run_plugin(
        &plugin,
        &config,
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "install-cni-test"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ],
    );
    assert!(!output.status.success());
    assert_eq!(error["code"], 11, "{error}");
    assert!(
        error["msg"].as_str().unwrap_or("").contains("agent")
            || error.to_string().contains(socket.to_str().unwrap()),
        "{error}"
    );

    // A second run: same content, same mtimes.
    let before = (mtime(&plugin), mtime(&conflist_path));
    let contents = std::fs::read(&conflist_path).unwrap();
    let output = install(host.path(), &socket_flag);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches("unchanged").count(), 2, "{stdout}");
    assert_eq!((mtime(&plugin), mtime(&conflist_path)), before);
    assert_eq!(std::fs::read(&conflist_path).unwrap(), contents);
}

#[test]
fn a_template_file_and_mtu_are_used() {
    let host = tempfile::tempdir().unwrap();
    let template = host.path().join("template.json");
    std::fs::write(
        &template,
        r#"{"name":"k8s-pod-network","cniVersion":"1.0.0","plugins":[
          {"type":"manul","agent_socket":"__AGENT_SOCKET__","mtu":__CNI_MTU__},
          {"type":"portmap","capabilities":{"portMappings":true}}]}"#,
    )
    .unwrap();
    install(
        host.path(),
        &[
            "--conflist-template",
            template.to_str().unwrap(),
            "--mtu",
            "1400",
            "--cni-conf-dir",
            "/etc/cni/other.d",
        ],
    );
    let text =
        std::fs::read_to_string(host.path().join("etc/cni/other.d/10-manul.conflist")).unwrap();
    let conflist: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(conflist["name"], "k8s-pod-network");
    assert_eq!(conflist["plugins"][0]["mtu"], 1400);
    assert_eq!(
        conflist["plugins"][0]["agent_socket"],
        "/var/run/manul/agent.sock"
    );
}

#[test]
fn a_template_the_plugin_would_refuse_installs_nothing() {
    let host = tempfile::tempdir().unwrap();
    let template = host.path().join("template.json");
    std::fs::write(
        &template,
        r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"manul","ipam":{"subnet":"10.0.0.0/8"}}]}"#,
    )
    .unwrap();
    let output = Command::new(AGENT)
        .arg("install-cni")
        .arg("--host-root")
        .arg(host.path())
        .args(["--plugin-binary", PLUGIN])
        .arg("--conflist-template")
        .arg(&template)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ipam.subnet"), "{stderr}");
    assert!(!host.path().join("opt").exists());
    assert!(!host.path().join("etc").exists());
}
