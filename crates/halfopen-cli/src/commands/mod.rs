//! What each command does. Services run until SIGINT/SIGTERM; queries ask
//! the reconciler's `Query` service, decode through halfopen-proto's
//! mappings and print through `output`.
pub mod certs;
pub mod collector;
pub mod coverage;
#[cfg(feature = "demo")]
pub mod demo;
pub mod explain;
pub mod findings;
pub mod history;
pub mod hosts;
pub mod incident;
pub mod reconciler;
pub mod snapshot;
pub mod tls;

use crate::cli::Cmd;
use anyhow::Result;
use halfopen_proto::transport::{self, ClientConfig, Role};
use halfopen_proto::v1::query_client::QueryClient;
use tls::Remote;
use tonic::transport::Channel;

/// Runs a command that talks gRPC. A failure that looks like a TLS
/// mismatch gets what to check on top: with HTTP/2 some of them (plaintext
/// to a TLS reconciler, a client certificate refused after the TLS 1.3
/// handshake) only show at the first call, deep in the command.
pub async fn run_async(cmd: Cmd) -> Result<()> {
    let tls = match &cmd {
        Cmd::Orphans { tls, .. }
        | Cmd::Findings { tls, .. }
        | Cmd::History { tls, .. }
        | Cmd::Incidents { tls, .. }
        | Cmd::Incident { tls, .. }
        | Cmd::Explain { tls, .. }
        | Cmd::Hosts { tls, .. }
        | Cmd::Coverage { tls, .. } => Some(tls.tls_cert.is_some()),
        _ => None,
    };
    let r = run_command(cmd).await;
    match (r, tls) {
        (Err(e), Some(tls)) => {
            let hint = transport::tls_hint(&format!("{e:#}"), tls);
            Err(if hint.is_empty() || format!("{e}").contains(hint) {
                e
            } else {
                e.context(hint.trim_start_matches("; ").to_string())
            })
        }
        (r, _) => r,
    }
}

async fn run_command(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Collector {
            reconciler,
            tls,
            interval,
            host_id,
            source,
            proc_net,
            bpf_dump_every,
            bpf_ring_size,
            show_secrets,
            redact_flags,
            netns,
            metrics_listen,
        } => {
            halfopen_sockets::owners::set_redaction(halfopen_core::Redaction {
                enabled: !show_secrets,
                extra_flags: redact_flags,
            });
            let source = if proc_net {
                halfopen_collector::source::SourceChoice::Proc
            } else {
                source
            };
            let bpf = halfopen_collector::choose::BpfConfig {
                dump_every: bpf_dump_every,
                ring_bytes: bpf_ring_size.map(|b| b.min(u32::MAX as usize) as u32),
            };
            collector::run(
                Remote { reconciler, tls },
                interval,
                host_id,
                source,
                bpf,
                metrics_listen,
                netns,
            )
            .await
        }
        Cmd::Reconciler {
            listen,
            db,
            no_db,
            grace,
            stale_intervals,
            greeting_ports,
            stall_after,
            gone_after,
            accept_stall_after,
            retention,
            incident_gap,
            max_hosts,
            max_sockets_per_host,
            max_sessions_per_peer,
            max_message_size,
            forget_hosts_after,
            dropped_handshake_ttl,
            metrics_listen,
            tls,
        } => {
            reconciler::run(reconciler::Args {
                listen,
                db: (!no_db).then_some(db),
                grace,
                stale_intervals,
                greeting_ports,
                stall_after,
                gone_after,
                accept_stall_after,
                retention: match retention {
                    crate::cli::Retention::Forever => None,
                    crate::cli::Retention::For(d) => Some(d),
                },
                incident_gap,
                max_hosts,
                max_sockets_per_host,
                max_sessions_per_peer,
                max_message_size,
                forget_hosts_after,
                dropped_handshake_ttl,
                metrics_listen,
                tls,
            })
            .await
        }
        Cmd::Orphans { reconciler, tls, json } => findings::orphans(&Remote { reconciler, tls }, json).await,
        Cmd::Findings {
            reconciler,
            tls,
            kind,
            json,
        } => findings::findings(&Remote { reconciler, tls }, kind, json).await,
        Cmd::Explain {
            target,
            reconciler,
            tls,
            json,
        } => explain::run(&Remote { reconciler, tls }, target, json).await,
        Cmd::Hosts { reconciler, tls, json } => hosts::run(&Remote { reconciler, tls }, json).await,
        Cmd::Coverage { reconciler, tls, json } => coverage::run(&Remote { reconciler, tls }, json).await,
        Cmd::History {
            reconciler,
            tls,
            since,
            until,
            kind,
            host,
            server,
            process,
            json,
            csv,
        } => {
            history::history(
                &Remote { reconciler, tls },
                history::HistoryArgs {
                    since,
                    until,
                    kind,
                    host,
                    server,
                    process,
                    json,
                    csv,
                },
            )
            .await
        }
        Cmd::Incidents {
            reconciler,
            tls,
            since,
            until,
            json,
        } => history::incidents(&Remote { reconciler, tls }, &since, until.as_deref(), json).await,
        Cmd::Incident {
            id,
            reconciler,
            tls,
            format,
            plot,
            output,
        } => {
            incident::run(
                &Remote { reconciler, tls },
                incident::Args {
                    id,
                    format,
                    plot,
                    output,
                },
            )
            .await
        }
        _ => unreachable!("handled in main"),
    }
}

/// A connected client of the reconciler's Query service: mutual TLS with a
/// reader certificate when the TLS flags are given.
pub async fn query_client(remote: &Remote) -> Result<QueryClient<Channel>> {
    let tls = tls::load(&remote.tls, tls::Want::Reader)?;
    let ch = ClientConfig {
        reconciler: remote.reconciler.clone(),
        role: Role::Reader,
        tls,
        insecure: remote.tls.insecure,
    }
    .connect()
    .await?;
    Ok(transport::query_client(ch))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
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
