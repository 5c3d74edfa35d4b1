//! manul-bgpd: the BGP speaker daemon. Parses flags, sets up logging, seeds the speaker from
//! `--config`, serves the gRPC API on `--socket` until SIGTERM/SIGINT. Does I/O.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::Parser;
use manul_bgpd::{
    config,
    daemon::{Speaker, api},
};
use tracing::{info, warn};

#[derive(Parser, Debug)]
#[command(version, about = "manul's BGP speaker")]
struct Flags {
    /// TOML configuration ([global], [[peer]], [[prefix]], originate = [...]); the gRPC API
    /// can change everything later.
    #[arg(long, env = "MANUL_BGPD_CONFIG")]
    config: Option<PathBuf>,
    /// The gRPC Unix socket (mode 0600).
    #[arg(
        long,
        env = "MANUL_BGPD_SOCKET",
        default_value = "/var/run/manul/bgpd.sock"
    )]
    socket: PathBuf,
    /// Log filter, e.g. info, debug, manul_bgpd=trace (trace dumps every message).
    #[arg(long, env = "MANUL_LOG", default_value = "info")]
    log_level: String,
    /// Parse the configuration, print what is wrong, and exit.
    #[arg(long)]
    check: bool,
    /// Listen here (ADDRESS:PORT, repeatable) from the start, before the agent sets the global
    /// settings: peers that connect in that moment are held, not refused (the agent's listen
    /// addresses replace these once set). Usually the node's address and port 179.
    #[arg(long, env = "MANUL_BGPD_LISTEN_EARLY", value_delimiter = ',')]
    listen_early: Vec<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&flags.log_level).context("--log-level")?,
        )
        .with_writer(std::io::stderr)
        .init();
    let seed = match &flags.config {
        Some(path) => Some(config::load(path).with_context(|| format!("{}", path.display()))?),
        None => None,
    };
    if flags.check {
        println!("configuration OK");
        return Ok(());
    }
    let speaker = Speaker::new();
    if let Some(seed) = seed {
        speaker
            .apply_config(seed)
            .await
            .context("applying the configuration")?;
    }
    speaker
        .listen_early(&flags.listen_early)
        .await
        .context("--listen-early")?;
    info!(socket = %flags.socket.display(), "manul-bgpd serving");
    let served = api::serve(Arc::clone(&speaker), &flags.socket, shutdown_signal()).await;
    speaker.shutdown().await;
    info!("manul-bgpd stopped");
    served.with_context(|| format!("gRPC on {}", flags.socket.display()))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            warn!(%error, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    info!("termination signal received");
}
