//! What each command does. Services run until SIGINT/SIGTERM; queries ask
//! the reconciler's `Query` service, decode through halfopen-proto's
//! mappings and print through `output`.
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

use crate::cli::Cmd;
use anyhow::Result;
use halfopen_proto::transport::{self, ClientConfig, Role};
use halfopen_proto::v1::query_client::QueryClient;
use tonic::transport::Channel;

pub async fn run_async(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Collector {
            reconciler,
            interval,
            host_id,
            proc_net,
            show_secrets,
            redact_flags,
            netns,
        } => {
            halfopen_sockets::owners::set_redaction(halfopen_core::Redaction {
                enabled: !show_secrets,
                extra_flags: redact_flags,
            });
            collector::run(reconciler, interval, host_id, proc_net, netns).await
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
            })
            .await
        }
        Cmd::Orphans { reconciler, json } => findings::orphans(&reconciler, json).await,
        Cmd::Findings { reconciler, kind, json } => findings::findings(&reconciler, kind, json).await,
        Cmd::Explain {
            target,
            reconciler,
            json,
        } => explain::run(&reconciler, target, json).await,
        Cmd::Hosts { reconciler, json } => hosts::run(&reconciler, json).await,
        Cmd::Coverage { reconciler, json } => coverage::run(&reconciler, json).await,
        Cmd::History {
            reconciler,
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
                &reconciler,
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
            since,
            until,
            json,
        } => history::incidents(&reconciler, &since, until.as_deref(), json).await,
        Cmd::Incident {
            id,
            reconciler,
            format,
            plot,
            output,
        } => {
            incident::run(
                &reconciler,
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

/// A connected client of the reconciler's Query service.
pub async fn query_client(reconciler: &str) -> Result<QueryClient<Channel>> {
    let ch = ClientConfig {
        reconciler: reconciler.to_string(),
        role: Role::Reader,
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
