//! `halfopen reconciler`: the central service, until SIGINT/SIGTERM.
use super::tls::{self, Want};
use crate::cli::TlsArgs;
use anyhow::Result;
use halfopen_reconciler::{EngineConfig, ServeConfig, DEFAULT_GREETING_PORTS};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub struct Args {
    /// None: 0.0.0.0:7077 with TLS or --insecure, else 127.0.0.1:7077.
    pub listen: Option<SocketAddr>,
    pub db: Option<PathBuf>,
    pub grace: Duration,
    pub stale_intervals: u32,
    pub greeting_ports: Vec<u16>,
    pub stall_after: Duration,
    pub gone_after: Duration,
    pub accept_stall_after: Duration,
    pub retention: Option<Duration>,
    pub incident_gap: Duration,
    pub max_hosts: usize,
    pub max_sockets_per_host: usize,
    pub max_sessions_per_peer: usize,
    pub max_message_size: usize,
    pub forget_hosts_after: Duration,
    pub metrics_listen: Option<SocketAddr>,
    pub tls: TlsArgs,
}

pub async fn run(a: Args) -> Result<()> {
    let mut ports = DEFAULT_GREETING_PORTS.to_vec();
    ports.extend(a.greeting_ports);
    ports.sort_unstable();
    ports.dedup();
    let tls = tls::load(&a.tls, Want::Reconciler)?;
    let listen = a.listen.unwrap_or_else(|| {
        let port = halfopen_proto::transport::DEFAULT_PORT;
        if tls.is_some() || a.tls.insecure {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
        } else {
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        }
    });
    let cfg = ServeConfig {
        listen,
        db: a.db,
        engine: EngineConfig {
            grace_ms: a.grace.as_millis() as u64,
            stale_intervals: a.stale_intervals,
            greeting_ports: ports,
            stall_after_ms: a.stall_after.as_millis().min(u32::MAX as u128) as u32,
            gone_after_ms: a.gone_after.as_millis() as u64,
            accept_stall_after_ms: a.accept_stall_after.as_millis() as u64,
            max_hosts: a.max_hosts,
            max_sockets_per_host: a.max_sockets_per_host,
            forget_after_ms: a.forget_hosts_after.as_millis() as u64,
            ..Default::default()
        },
        tick: Duration::from_millis(200),
        retention: a.retention,
        incident_gap: a.incident_gap,
        sessions: halfopen_reconciler::SessionLimits {
            max_sessions_per_peer: a.max_sessions_per_peer,
        },
        max_message_bytes: a.max_message_size,
        metrics_listen: a.metrics_listen,
        insecure: a.tls.insecure,
        tls,
        auth_stats: Default::default(),
    };
    halfopen_reconciler::serve(cfg, super::shutdown_signal()).await?;
    Ok(())
}
