//! Reading a daemon's progress: BIRD through its control socket (the birdc protocol, without
//! spawning birdc for every poll) and manul-bgpd through ListPeers. Does I/O (sockets).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use manul_bgpd::daemon::api::connect;
use manul_proto::bgpd as proto;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{
        UnixStream,
        unix::{OwnedReadHalf, OwnedWriteHalf},
    },
};

/// What a poll saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// BGP sessions in Established.
    pub established: usize,
    /// When the first Established session came up (Unix seconds; BIRD only, from "Since").
    pub first_up: Option<f64>,
    /// Routes imported (BIRD) or accepted (manul-bgpd) over every BGP session.
    pub accepted: u64,
    /// Routes imported by static protocols (BIRD only: the sender is loaded).
    pub originated: u64,
}

pub struct BirdCtl {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl BirdCtl {
    pub async fn connect(socket: &Path, deadline: Instant) -> Result<BirdCtl> {
        let stream = loop {
            match UnixStream::connect(socket).await {
                Ok(stream) => break stream,
                Err(error) if Instant::now() > deadline => {
                    bail!("BIRD socket {}: {error}", socket.display())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let (reader, writer) = stream.into_split();
        let mut ctl = BirdCtl {
            reader: BufReader::new(reader),
            writer,
        };
        ctl.reply().await.context("BIRD greeting")?;
        Ok(ctl)
    }

    /// The lines of one reply, codes stripped. A reply ends with a line "DDDD " whose code is
    /// 0xxx (done), 8xxx or 9xxx (errors).
    async fn reply(&mut self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await? == 0 {
                bail!("BIRD closed its control socket");
            }
            let line = line.trim_end_matches('\n');
            let bytes = line.as_bytes();
            let coded = bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit);
            if !coded {
                lines.push(line.get(1..).unwrap_or("").to_string());
                continue;
            }
            lines.push(line[5..].to_string());
            if bytes[4] == b' ' {
                match bytes[0] {
                    b'0' => return Ok(lines),
                    b'8' | b'9' => bail!("BIRD: {line}"),
                    _ => {}
                }
            }
        }
    }

    pub async fn command(&mut self, command: &str) -> Result<Vec<String>> {
        self.writer
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        self.reply().await
    }

    /// `show protocols all`: Established BGP sessions, routes imported by BGP and by static.
    pub async fn snapshot(&mut self) -> Result<Snapshot> {
        let lines = self.command("show protocols all").await?;
        let mut snapshot = Snapshot::default();
        let mut kind = String::new();
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !line.starts_with(' ') && fields.len() >= 4 && fields[0] != "Name" {
                kind = fields[1].to_string();
                if kind == "BGP" && fields.last() == Some(&"Established") {
                    snapshot.established += 1;
                    let since = fields.get(4).and_then(|since| since.parse::<f64>().ok());
                    snapshot.first_up = match (snapshot.first_up, since) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
            } else if fields.first() == Some(&"Routes:") {
                let imported: u64 = fields.get(1).context("Routes: line")?.parse()?;
                match kind.as_str() {
                    "BGP" => snapshot.accepted += imported,
                    "Static" => snapshot.originated += imported,
                    _ => {}
                }
            }
        }
        Ok(snapshot)
    }
}

pub type Client = proto::bgpd_client::BgpdClient<tonic::transport::Channel>;

/// Originates prefixes `0..count` (as `lab::prefix` numbers them) through AddPrefixes, in
/// calls of 10,000: how the agent feeds manul-bgpd.
pub async fn originate(client: &mut Client, count: usize) -> Result<()> {
    let indices: Vec<usize> = (0..count).collect();
    for batch in indices.chunks(10_000) {
        let prefixes = batch
            .iter()
            .map(|index| proto::OriginatedPrefix {
                prefix: crate::lab::prefix(*index),
                ..Default::default()
            })
            .collect();
        client
            .add_prefixes(proto::AddPrefixesRequest { prefixes })
            .await
            .context("AddPrefixes")?;
    }
    Ok(())
}

/// A client of manul-bgpd's API once its socket answers (the daemon serves it only after
/// applying its configuration, originated prefixes included).
pub async fn manul_client(socket: &Path, deadline: Instant) -> Result<Client> {
    loop {
        if socket.exists()
            && let Ok(client) = connect(socket).await
        {
            return Ok(client);
        }
        if Instant::now() > deadline {
            bail!("no manul-bgpd API on {}", socket.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn manul_snapshot(client: &mut Client) -> Result<Snapshot> {
    let peers = client
        .list_peers(proto::ListPeersRequest::default())
        .await?
        .into_inner()
        .peers;
    Ok(Snapshot {
        established: peers.iter().filter(|p| p.state == "Established").count(),
        accepted: peers.iter().map(|p| p.prefixes_accepted).sum(),
        ..Snapshot::default()
    })
}

pub enum Probe {
    Bird(BirdCtl),
    Manul(Client),
}

impl Probe {
    pub async fn snapshot(&mut self) -> Result<Snapshot> {
        match self {
            Probe::Bird(ctl) => ctl.snapshot().await,
            Probe::Manul(client) => manul_snapshot(client).await,
        }
    }
}

/// When manul-bgpd's first session came up (Unix seconds), from the timestamp of the first
/// "established" line of its log ("2026-11-30T05:04:11.112229Z", possibly in ANSI colours).
pub fn manul_first_up(log: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|line| line.contains(" established "))?;
    let mut plain = String::new();
    let mut escape = false;
    for c in line.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (false, c) => plain.push(c),
            (true, 'm') => escape = false,
            (true, _) => {}
        }
    }
    let stamp = plain.split('Z').next()?;
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.split('-').map(|part| part.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let mut hms = time.split(':');
    let (h, min) = (
        hms.next()?.parse::<f64>().ok()?,
        hms.next()?.parse::<f64>().ok()?,
    );
    let sec = hms.next()?.parse::<f64>().ok()?;
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + sec)
}

/// Now, in Unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
