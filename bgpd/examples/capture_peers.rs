//! Captures real BGP messages from BIRD 2 and GoBGP into `bgpd/tests/vectors/*.hex`. Does I/O:
//! needs root, `ip`, `bird`, `birdc`, `gobgpd`, `gobgp`; everything runs in a network
//! namespace of its own (`manulcap<pid>`), removed on every exit path, on its loopback only.
//!
//! Run: `cargo run -p manul-bgpd --example capture_peers -- bgpd/tests/vectors`
//! It re-runs itself inside the namespace (`--inside DIR`), where a tiny listener per session
//! answers each daemon's OPEN with a hand-made OPEN + KEEPALIVE and records every message
//! the daemon sends until it is disabled from its CLI (which makes it send a NOTIFICATION).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One capture session: the file prefix, our listening address, and whether our OPEN
/// advertises the 4-octet AS and add-path capabilities.
struct Session {
    name: &'static str,
    listen: &'static str,
    four_octet: bool,
    add_path: bool,
}

const SESSIONS: [Session; 4] = [
    Session {
        name: "bird_4octet",
        listen: "127.0.0.1:1790",
        four_octet: true,
        add_path: false,
    },
    Session {
        name: "bird_2octet",
        listen: "127.0.0.1:1791",
        four_octet: false,
        add_path: false,
    },
    Session {
        name: "bird_ipv6",
        listen: "[::1]:1792",
        four_octet: true,
        add_path: false,
    },
    Session {
        name: "gobgp",
        listen: "127.0.0.1:1793",
        four_octet: true,
        add_path: true,
    },
];

const BIRD_CONF: &str = r#"
router id 192.0.2.1;
protocol device {}
protocol static s4 {
  ipv4; route 10.1.0.0/16 blackhole; route 10.2.3.0/24 blackhole; route 10.3.0.0/24 blackhole;
}
protocol static s6 { ipv6; route 2001:db8:1::/48 blackhole; }
filter decorate {
  if net = 10.1.0.0/16 then {
    bgp_med = 50; bgp_community.add((65001,100)); bgp_community.add((65001,200));
    bgp_large_community.add((4200000001,1,2));
  }
  if net = 2001:db8:1::/48 then { bgp_community.add((65001,300)); }
  if net = 10.3.0.0/24 then {
    bgp_ext_community.add((rt, 65001, 100)); bgp_ext_community.add((ro, 192.0.2.1, 7));
    bgp_ext_community.add((rt, 4200000001, 5)); bgp_ext_community.add((generic, 0x40040000, 1));
  }
  accept;
}
protocol bgp bird_4octet {
  local 127.0.0.2 as 4200000001; neighbor 127.0.0.1 port 1790 as 65002; multihop;
  connect delay time 1; connect retry time 3; hold time 90;
  ipv4 { import none; export filter decorate; };
}
protocol bgp bird_2octet {
  local 127.0.0.3 as 4200000001; neighbor 127.0.0.1 port 1791 as 65002; multihop;
  connect delay time 1; connect retry time 3; hold time 90;
  ipv4 { import none; export filter decorate; };
}
protocol bgp bird_ipv6 {
  local ::1 as 4200000001; neighbor ::1 port 1792 as 65002; multihop;
  connect delay time 1; connect retry time 3; hold time 90;
  ipv6 { import none; export filter decorate; next hop address 2001:db8::1; };
}
"#;

const GOBGP_CONF: &str = r#"
[global.config]
  as = 4200000002
  router-id = "192.0.2.2"
  port = -1
[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.1"
    peer-as = 65002
  [neighbors.transport.config]
    local-address = "127.0.0.4"
    remote-port = 1793
  [neighbors.timers.config]
    connect-retry = 3
    hold-time = 90
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.add-paths.config]
      send-max = 4
      receive = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"#;

const GOBGP_API: &str = "127.0.0.1:50077";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--inside") {
        let out = PathBuf::from(args.get(2).ok_or("--inside DIR")?);
        return inside(&out);
    }
    let out = std::fs::canonicalize(args.get(1).map_or("bgpd/tests/vectors", String::as_str))?;
    let namespace = Namespace::create(&format!("manulcap{}", std::process::id()))?;
    let status = Command::new("ip")
        .args(["netns", "exec", &namespace.0])
        .arg(std::env::current_exe()?)
        .arg("--inside")
        .arg(&out)
        .status()?;
    drop(namespace);
    if !status.success() {
        return Err(format!("capture inside the namespace failed: {status}").into());
    }
    Ok(())
}

/// A network namespace deleted on drop (also when unwinding).
struct Namespace(String);

impl Namespace {
    fn create(name: &str) -> Result<Self> {
        run("ip", &["netns", "add", name])?;
        Ok(Namespace(name.to_string()))
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A daemon killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program).args(args).output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{program} {args:?}: {} {stderr}", output.status).into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn inside(out: &Path) -> Result<()> {
    run("ip", &["link", "set", "lo", "up"])?;
    let work = std::env::temp_dir().join(format!("manulcap-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let listeners = SESSIONS
        .iter()
        .map(|session| Ok((session, TcpListener::bind(session.listen)?)))
        .collect::<Result<Vec<_>>>()?;
    let recorders: Vec<_> = listeners
        .into_iter()
        .map(|(session, listener)| thread::spawn(move || record(session, &listener)))
        .collect();

    let bird_conf = work.join("bird.conf");
    std::fs::write(&bird_conf, BIRD_CONF)?;
    let bird_socket = work.join("bird.ctl");
    let socket = bird_socket.to_string_lossy().into_owned();
    let bird = Daemon(
        Command::new("bird")
            .args(["-f", "-c"])
            .arg(&bird_conf)
            .args(["-s", &socket])
            .stdout(Stdio::null())
            .spawn()?,
    );
    let gobgp_conf = work.join("gobgpd.toml");
    std::fs::write(&gobgp_conf, GOBGP_CONF)?;
    let gobgp = Daemon(
        Command::new("gobgpd")
            .arg("-f")
            .arg(&gobgp_conf)
            .args(["--api-hosts", GOBGP_API])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    thread::sleep(Duration::from_secs(3));
    let gobgp_cli = |args: &[&str]| {
        let mut all = vec!["-u", "127.0.0.1", "-p", "50077"];
        all.extend_from_slice(args);
        run("gobgp", &all)
    };
    gobgp_cli(&[
        "global",
        "rib",
        "add",
        "-a",
        "ipv4",
        "10.5.0.0/16",
        "nexthop",
        "192.0.2.2",
        "origin",
        "igp",
        "med",
        "70",
        "community",
        "65001:300",
        "large-community",
        "4200000002:3:4",
    ])?;
    gobgp_cli(&[
        "global",
        "rib",
        "add",
        "-a",
        "ipv4",
        "10.6.0.0/24",
        "nexthop",
        "192.0.2.2",
        "identifier",
        "9",
    ])?;
    gobgp_cli(&[
        "global",
        "rib",
        "add",
        "-a",
        "ipv6",
        "2001:db8:5::/48",
        "nexthop",
        "2001:db8::2",
    ])?;
    thread::sleep(Duration::from_secs(12));
    for session in ["bird_4octet", "bird_2octet", "bird_ipv6"] {
        run("birdc", &["-s", &socket, "disable", session])?;
    }
    gobgp_cli(&["neighbor", "127.0.0.1", "disable"])?;
    for recorder in recorders {
        let (name, messages) = recorder.join().map_err(|_| "recorder panicked")??;
        save(out, name, &messages)?;
    }
    drop((bird, gobgp));
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Accepts one connection, exchanges OPEN/KEEPALIVE and records what the daemon sends until
/// its NOTIFICATION (or 40 seconds).
fn record(
    session: &'static Session,
    listener: &TcpListener,
) -> Result<(&'static str, Vec<Vec<u8>>)> {
    let (mut stream, _) = listener.accept()?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut messages = Vec::new();
    let mut buffer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut answered = false;
    while Instant::now() < deadline {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(error) => return Err(error.into()),
        }
        while buffer.len() >= 19 {
            let length = usize::from(u16::from_be_bytes([buffer[16], buffer[17]]));
            if length < 19 || buffer.len() < length {
                break;
            }
            let message: Vec<u8> = buffer.drain(..length).collect();
            let kind = message[18];
            messages.push(message);
            if kind == 1 && !answered {
                answer(&mut stream, session)?;
                answered = true;
            }
            if kind == 4 {
                stream.write_all(&keepalive())?;
            }
            if kind == 3 {
                return Ok((session.name, messages));
            }
        }
    }
    Ok((session.name, messages))
}

fn keepalive() -> Vec<u8> {
    let mut message = vec![0xff; 16];
    message.extend_from_slice(&[0, 19, 4]);
    message
}

/// Our hand-made OPEN (AS 65002, hold 90, id 192.0.2.100) and a KEEPALIVE.
fn answer(stream: &mut TcpStream, session: &Session) -> Result<()> {
    let mut capabilities = vec![1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1, 2, 0];
    if session.four_octet {
        capabilities.extend_from_slice(&[65, 4, 0, 0, 0xfd, 0xea]);
    }
    if session.add_path {
        capabilities.extend_from_slice(&[69, 4, 0, 1, 1, 3]);
    }
    let mut body = vec![4, 0xfd, 0xea, 0, 90, 192, 0, 2, 100];
    body.push(u8::try_from(capabilities.len() + 2)?);
    body.extend_from_slice(&[2, u8::try_from(capabilities.len())?]);
    body.extend_from_slice(&capabilities);
    let mut message = vec![0xff; 16];
    message.extend_from_slice(&u16::try_from(19 + body.len())?.to_be_bytes());
    message.push(1);
    message.extend_from_slice(&body);
    message.extend_from_slice(&keepalive());
    stream.write_all(&message)?;
    Ok(())
}

/// Writes `<name>_<kind>[_<n>].hex`, 32 bytes a line.
fn save(out: &Path, name: &str, messages: &[Vec<u8>]) -> Result<()> {
    let mut updates = 0;
    for message in messages {
        let kind = match message.get(18) {
            Some(1) => "open".to_string(),
            Some(2) => {
                updates += 1;
                format!("update_{updates}")
            }
            Some(3) => "notification".to_string(),
            Some(4) => "keepalive".to_string(),
            _ => "other".to_string(),
        };
        let text: String = message
            .chunks(32)
            .map(|line| line.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
            .collect();
        std::fs::write(out.join(format!("{name}_{kind}.hex")), text)?;
    }
    println!("{name}: {} messages", messages.len());
    Ok(())
}
