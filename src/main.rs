//! The `halfopen` command: the collector and reconciler services, the query
//! commands, `snapshot`, and the self-contained `demo`.
mod demo;
mod output;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use halfopen_proto::v1;
use halfopen_proto::v1::reconciler_client::ReconcilerClient;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

const DEFAULT_RECONCILER: &str = "http://127.0.0.1:7077";

#[derive(Parser)]
#[command(
    name = "halfopen",
    version,
    about = "Find half-open TCP connections by comparing both ends",
    long_about = "Find half-open TCP connections by comparing both ends.\n\n\
        A collector on every host streams its TCP socket table to one reconciler, which joins both ends of \
        every connection by 4-tuple and reports, after a race-free confirmation, the connections that only \
        the client holds: the SYN-cookie incident where a full accept queue made the server forget a \
        handshake the client thinks is done, and the client waits forever for a greeting.",
    after_help = "Quick start on one machine (as root): halfopen demo\n\
        On real hosts: run `halfopen reconciler` once, `halfopen collector --reconciler http://RECONCILER:7077` \
        on every app and DB host, then `halfopen orphans`."
)]
struct Cli {
    /// Log filter for the services (also RUST_LOG), e.g. info, debug, halfopen_reconciler=debug.
    #[arg(long, global = true, env = "HALFOPEN_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the per-host collector: stream this host's TCP table to the reconciler.
    #[command(
        after_help = "Example: halfopen collector --reconciler http://10.1.0.5:7077 --interval 5s\n\
        Runs as root (sock_diag sees every socket without it, but naming client processes needs /proc/<pid>/fd).\n\
        Reconnects with backoff while the reconciler is away; never exits because of it."
    )]
    Collector {
        /// Reconciler URL.
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        /// How often to scan and report (e.g. 5s, 1s, 500ms).
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        interval: Duration,
        /// This host's name in reports and findings (default: the hostname).
        #[arg(long)]
        host_id: Option<String>,
        /// Read /proc/net/tcp instead of netlink sock_diag (slower; for kernels without sock_diag).
        #[arg(long)]
        proc_net: bool,
    },
    /// Run the central reconciler: join every host's table, confirm and record findings.
    #[command(after_help = "Example: halfopen reconciler --listen 0.0.0.0:7077 --db /var/lib/halfopen/halfopen.db")]
    Reconciler {
        /// Address to listen on for collectors and the CLI.
        #[arg(long, default_value = "0.0.0.0:7077")]
        listen: SocketAddr,
        /// SQLite database that records every confirmed finding (survives restarts).
        #[arg(long, env = "HALFOPEN_DB", default_value = "/var/lib/halfopen/halfopen.db")]
        db: PathBuf,
        /// Keep findings in memory only.
        #[arg(long, conflicts_with = "db")]
        no_db: bool,
        /// How long a candidate must be known before the server host is asked (must exceed any handshake).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        grace: Duration,
        /// A host with no report for this many of its intervals is stale: nothing is judged against it.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        stale_intervals: u32,
        /// Also treat this port as server-speaks-first (repeatable; defaults: 21 22 25 110 119 143 587 3306).
        #[arg(long = "greeting-port")]
        greeting_ports: Vec<u16>,
        /// A client on a greeting port that received nothing for this long is a stalled greeting.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        stall_after: Duration,
    },
    /// List the current half-open connections (client_only).
    #[command(after_help = "Example: halfopen orphans --reconciler http://10.1.0.5:7077 --json | jq '.[].pid'")]
    Orphans {
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        /// One JSON array; each element: client, server, client_host, server_host, side, pid, process, cmdline, uid, first_seen, confirmed_at, ...
        #[arg(long)]
        json: bool,
    },
    /// List every finding: client_only, server_only, stalled_greeting, listener_at_risk, with why.
    #[command(after_help = "Example: halfopen findings --kind stalled_greeting --json")]
    Findings {
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        /// Only this kind.
        #[arg(long, value_parser = ["client_only", "server_only", "stalled_greeting", "listener_at_risk"])]
        kind: Option<String>,
        /// One JSON array: the orphans fields plus kind, server_pid, server_process, explanation, ...
        #[arg(long)]
        json: bool,
    },
    /// Diagnose a finding, a host or a listener, and say exactly what to change.
    #[command(
        after_help = "TARGET: a host id (db-1), a listener (db-1:3306 or 10.0.0.5:3306), or a finding's client \
        endpoint (10.0.0.7:51234). Without TARGET: every listener and finding that needs attention.\n\
        Example: halfopen explain db-1:3306"
    )]
    Explain {
        target: Option<String>,
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        #[arg(long)]
        json: bool,
    },
    /// List every collector: addresses, last report, socket counts, stale or not.
    #[command(after_help = "Example: halfopen hosts --json")]
    Hosts {
        #[arg(long, env = "HALFOPEN_RECONCILER", default_value = DEFAULT_RECONCILER)]
        reconciler: String,
        #[arg(long)]
        json: bool,
    },
    /// This host's TCP connections as the collector sees them, with side and process (like `ss -tnp`).
    #[command(after_help = "Example: halfopen snapshot --json | jq '.[] | select(.side==\"client\")'")]
    Snapshot {
        #[arg(long)]
        json: bool,
        /// Also read tcp_info (bytes received/acked, ms since last data received).
        #[arg(long)]
        info: bool,
        /// Read /proc/net/tcp instead of netlink sock_diag.
        #[arg(long)]
        proc_net: bool,
    },
    /// Reproduce the SYN-cookie incident in a throwaway lab and show what halfopen finds (root).
    #[command(
        after_help = "Builds network namespaces (198.18.0.0/15 addresses only), runs the real reconciler and \
        collectors in them, overflows a greeting server's accept queue with a burst of connects, prints \
        halfopen's findings next to `ss` on both sides, and tears everything down (also on Ctrl-C).\n\
        Example: sudo halfopen demo --connections 500 --dual-stack"
    )]
    Demo(demo::DemoArgs),
    /// Lab processes used by `demo` and the tests.
    #[command(hide = true)]
    Lab {
        #[command(subcommand)]
        cmd: halfopen_lab::LabCommand,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 5s, 500ms, 2m)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// Logs to stderr with `filter` (RUST_LOG wins when set); a filter that does
/// not parse is an error, not silently "info".
fn init_logging(filter: &str) -> Result<()> {
    let (filter, from) = match std::env::var("RUST_LOG") {
        Ok(f) => (f, "RUST_LOG"),
        Err(_) => (filter.to_string(), "--log/HALFOPEN_LOG"),
    };
    let f = tracing_subscriber::EnvFilter::try_new(&filter).with_context(|| {
        format!("invalid log filter {filter:?} in {from} (examples: info, debug, halfopen_reconciler=debug)")
    })?;
    // only fails if a subscriber is already set, which cannot happen here
    let _ = tracing_subscriber::fmt()
        .with_env_filter(f)
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Lab { cmd } => {
            init_logging(&cli.log)?;
            halfopen_lab::run(cmd).map_err(Into::into)
        }
        Cmd::Demo(args) => {
            init_logging("warn")?;
            demo::run(args)
        }
        Cmd::Snapshot { json, info, proc_net } => snapshot(json, info, proc_net),
        other => {
            init_logging(&cli.log)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(run_async(other))
        }
    }
}

async fn run_async(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Collector {
            reconciler,
            interval,
            host_id,
            proc_net,
        } => {
            let host_id = match host_id {
                Some(h) if !h.trim().is_empty() => h,
                Some(_) => bail!("--host-id must not be empty"),
                None => hostname()?,
            };
            let cfg = halfopen_collector::CollectorConfig {
                reconciler: halfopen_proto::client::reconciler_url(&reconciler),
                interval,
                host_id,
                force_proc: proc_net,
            };
            halfopen_collector::run(cfg, shutdown_signal()).await?;
            Ok(())
        }
        Cmd::Reconciler {
            listen,
            db,
            no_db,
            grace,
            stale_intervals,
            greeting_ports,
            stall_after,
        } => {
            let mut ports = halfopen_reconciler::engine::DEFAULT_GREETING_PORTS.to_vec();
            ports.extend(greeting_ports);
            ports.sort_unstable();
            ports.dedup();
            let cfg = halfopen_reconciler::ServeConfig {
                listen,
                db: (!no_db).then_some(db),
                engine: halfopen_reconciler::EngineConfig {
                    grace_ms: grace.as_millis() as u64,
                    stale_intervals,
                    greeting_ports: ports,
                    stall_after_ms: stall_after.as_millis().min(u32::MAX as u128) as u32,
                    ..Default::default()
                },
                tick: Duration::from_millis(200),
            };
            halfopen_reconciler::serve(cfg, shutdown_signal()).await?;
            Ok(())
        }
        Cmd::Orphans { reconciler, json } => {
            let mut c = client(&reconciler).await?;
            let findings = halfopen_proto::client::list_findings(&mut c, "client_only")
                .await
                .with_context(|| format!("asking {reconciler} for orphans"))?;
            let client_only: Vec<_> = findings.into_iter().filter(|f| f.kind == "client_only").collect();
            let rows = shown(&client_only);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", output::orphans_table(&rows));
            }
            Ok(())
        }
        Cmd::Findings { reconciler, kind, json } => {
            let mut c = client(&reconciler).await?;
            let findings = halfopen_proto::client::list_findings(&mut c, &kind.unwrap_or_default())
                .await
                .with_context(|| format!("asking {reconciler} for findings"))?;
            let rows = shown(&findings);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", output::findings_table(&rows));
            }
            Ok(())
        }
        Cmd::Explain {
            target,
            reconciler,
            json,
        } => {
            let mut c = client(&reconciler).await?;
            let r = c
                .explain(v1::ExplainRequest {
                    target: target.clone().unwrap_or_default(),
                })
                .await
                .map_err(|s| match s.code() {
                    tonic::Code::NotFound => anyhow::anyhow!("{}", s.message()),
                    _ => anyhow::anyhow!("asking {reconciler} to explain: {s}"),
                })?
                .into_inner();
            let diagnoses: Vec<_> = r
                .diagnoses
                .into_iter()
                .map(halfopen_proto::convert::diagnosis_from_wire)
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&diagnoses)?);
            } else {
                print!("{}", output::explain_text(&diagnoses));
            }
            Ok(())
        }
        Cmd::Hosts { reconciler, json } => {
            let mut c = client(&reconciler).await?;
            let r = c
                .list_hosts(v1::ListHostsRequest {})
                .await
                .with_context(|| format!("asking {reconciler} for hosts"))?
                .into_inner();
            let rows: Vec<_> = r.hosts.iter().map(output::host_json).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", output::hosts_table(&rows));
            }
            Ok(())
        }
        _ => unreachable!("handled in main"),
    }
}

fn snapshot(json: bool, info: bool, proc_net: bool) -> Result<()> {
    let snap = halfopen_collector::snapshot::snapshot(proc_net, info).context("reading this host's sockets")?;
    let rows = snap.sockets.iter().map(|(r, p)| output::snapshot_json(r, p.as_deref()));
    if json {
        // Streamed: no list of rows and no whole document in memory.
        use serde::ser::Serializer as _;
        use std::io::Write as _;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        serde_json::Serializer::new(&mut out).collect_seq(rows)?;
        writeln!(out)?;
        out.flush()?;
    } else {
        let mut rows: Vec<_> = rows.collect();
        rows.sort_by_cached_key(|r| (r.side, r.local.to_string(), r.remote.to_string()));
        print!("{}", output::snapshot_table(&rows));
        eprintln!(
            "{} sockets, {} listeners, read through {}",
            rows.len(),
            snap.listeners.len(),
            snap.source
        );
    }
    if snap.owner_stats.permission_errors > 0 {
        eprintln!(
            "warning: {} /proc entries could not be read (permission denied): their processes are not shown; run as root",
            snap.owner_stats.permission_errors
        );
    }
    if let Some(e) = &snap.owner_stats.first_error {
        eprintln!(
            "warning: {} unexpected errors reading /proc (their processes are not shown); first: {e}",
            snap.owner_stats.other_errors
        );
    }
    Ok(())
}

/// The findings as printed; any that cannot be shown (malformed from the
/// reconciler) are counted on stderr, not dropped silently.
fn shown(findings: &[v1::Finding]) -> Vec<output::OrphanJson> {
    let rows: Vec<_> = findings.iter().filter_map(output::orphan_json).collect();
    if rows.len() < findings.len() {
        eprintln!(
            "warning: {} findings from the reconciler could not be decoded and are not shown",
            findings.len() - rows.len()
        );
    }
    rows
}

async fn client(url: &str) -> Result<ReconcilerClient<tonic::transport::Channel>> {
    let url = halfopen_proto::client::reconciler_url(url);
    let ep = tonic::transport::Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid reconciler URL {url:?}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    let ch = ep.connect().await.with_context(|| {
        format!("cannot reach the reconciler at {url} (is `halfopen reconciler` running there? set --reconciler or HALFOPEN_RECONCILER)")
    })?;
    Ok(ReconcilerClient::new(ch).max_decoding_message_size(1024 * 1024 * 1024))
}

fn hostname() -> Result<String> {
    let h = nix_hostname().context("reading the hostname (or pass --host-id)")?;
    if h.is_empty() {
        bail!("the hostname is empty: pass --host-id");
    }
    Ok(h)
}

fn nix_hostname() -> std::io::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
