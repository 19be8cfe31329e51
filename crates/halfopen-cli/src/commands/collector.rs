//! `halfopen collector`: the per-host agent, until SIGINT/SIGTERM.
use super::tls::{self, Remote, Want};
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::time::Duration;

pub async fn run(
    remote: Remote,
    interval: Duration,
    host_id: Option<String>,
    source: halfopen_collector::source::SourceChoice,
    bpf: halfopen_collector::choose::BpfConfig,
    metrics_listen: Option<SocketAddr>,
    netns: crate::cli::NetnsArgs,
) -> Result<()> {
    let host_id = match host_id {
        Some(h) if !h.trim().is_empty() => h,
        Some(_) => bail!("--host-id must not be empty"),
        None => hostname()?,
    };
    // The certificate must be this host's: checked now, not refused by the reconciler later.
    let tls = tls::load(&remote.tls, Want::Collector { host_id: &host_id })?;
    let cfg = halfopen_collector::CollectorConfig {
        reconciler: remote.reconciler,
        interval,
        host_id,
        force_proc: source == halfopen_collector::source::SourceChoice::Proc,
        source,
        bpf,
        metrics_listen,
        tls,
        insecure: remote.tls.insecure,
        netns: netns.netns,
        netns_rescan: netns.netns_rescan,
        max_namespaces: netns.max_namespaces as usize,
        host_root: netns.host_root,
    };
    halfopen_collector::run(cfg, super::shutdown_signal()).await?;
    Ok(())
}

fn hostname() -> Result<String> {
    let h = gethostname().context("reading the hostname (or pass --host-id)")?;
    if h.is_empty() {
        bail!("the hostname is empty: pass --host-id");
    }
    Ok(h)
}

fn gethostname() -> std::io::Result<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
}
