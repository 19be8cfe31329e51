//! Resolving what `halfopen explain TARGET` names (a host, a listener, a
//! finding's client end) and gathering what the engine sees about each
//! listener for [`crate::diagnose::listener_diagnosis`].
use crate::diagnose::{listener_diagnosis, ListenerContext, Seen};
use crate::hosts::HostIdx;
use crate::{Clock, Engine};
use halfopen_core::{Diagnosis, ExplainTarget, Finding, FindingKind};
use std::collections::BTreeSet;
use std::net::SocketAddr;

impl Seen {
    /// Counts one finding on the listener (live, or stored for a postmortem).
    pub fn add(&mut self, f: &Finding) {
        *self.by_kind.entry(f.kind.as_str()).or_insert(0) += 1;
        let e = &f.evidence;
        match f.kind {
            FindingKind::ClientOnly => {
                if let Some(r) = &e.server_restarted {
                    self.orphans_of_restart += 1;
                    if self.restart.as_ref().is_none_or(|x| x.at_ms < r.at_ms) {
                        self.restart = Some(r.clone());
                    }
                }
                if f.keepalive {
                    self.orphans_with_keepalive += 1;
                }
                if self.client_keepalive.is_none() {
                    self.client_keepalive = e.client_keepalive;
                }
                if e.witness.is_some() {
                    self.orphans_witnessed += 1;
                }
            }
            FindingKind::DroppedHandshake => {
                self.dropped_handshakes += 1;
                if let Some(w) = &e.witness {
                    *self.dropped_paths.entry(w.path.as_str()).or_insert(0) += 1;
                }
            }
            FindingKind::ServerOnly => {
                if e.client_host_gone_since_ms.is_some() {
                    self.leftovers += 1;
                    if let Some(c) = f.subject.client_host() {
                        self.gone_hosts.insert(c.to_string());
                    }
                }
                if f.keepalive {
                    self.server_only_with_keepalive += 1;
                }
            }
            FindingKind::StalledGreeting => {
                if e.in_accept_queue == Some(true) {
                    self.stalled_queued += 1;
                } else {
                    self.stalled_accepted += 1;
                }
            }
            FindingKind::AcceptStalled => {
                // The longest wait, with how many waited then.
                let this = (e.accept_wait_ms.unwrap_or(0), e.queued.unwrap_or(0));
                if self.accept_stall.is_none_or(|x| this.0 > x.0) {
                    self.accept_stall = Some(this);
                }
            }
            FindingKind::ListenerAtRisk => {}
        }
    }
}

/// A target that names nothing the engine knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("unknown host {0:?}")]
    UnknownHost(String),
    #[error("no monitored host owns {0}")]
    Unowned(std::net::IpAddr),
    #[error("{0:?} is neither a host, a host:port listener, nor an ip:port of a finding")]
    Unknown(String),
}

impl Engine {
    /// Diagnoses for `target`: everything that needs attention (every
    /// listener with findings), a host, a host's listener, a listener's
    /// address, or the client endpoint of a finding.
    pub fn explain(&self, target: &ExplainTarget, now: Clock) -> Result<Vec<Diagnosis>, ExplainError> {
        let raw = target.to_string();
        let want: Vec<(HostIdx, Option<SocketAddr>)> = match target {
            ExplainTarget::Everything => self.attention(None),
            _ if self.hosts.find(&raw).is_some() => {
                let h = self.hosts.find(&raw).unwrap_or_default();
                let v = self.attention(Some(&raw));
                if v.is_empty() {
                    vec![(h, None)]
                } else {
                    v
                }
            }
            ExplainTarget::HostPort { host, port } => {
                let h = self
                    .hosts
                    .find(host)
                    .ok_or_else(|| ExplainError::UnknownHost(host.clone()))?;
                vec![(h, Some(self.listener_on_port(h, *port)))]
            }
            ExplainTarget::Endpoint(ep) => {
                if let Some(h) = self.hosts.find(&ep.ip().to_string()) {
                    vec![(h, Some(self.listener_on_port(h, ep.port())))]
                } else if let Some(f) = self.findings.iter().find(|f| f.subject.client_end() == Some(*ep)) {
                    let s = self
                        .hosts
                        .find(f.subject.server_host())
                        .ok_or_else(|| ExplainError::UnknownHost(f.subject.server_host().to_string()))?;
                    let mut d = self.listener_diag(s, Some(f.subject.server_end()), now);
                    d.facts
                        .insert(0, format!("{} {}: {}", f.kind, ep, crate::explain::finding_text(f)));
                    return Ok(vec![d]);
                } else {
                    let s = self.hosts.owner_of(ep.ip()).ok_or(ExplainError::Unowned(ep.ip()))?;
                    vec![(s, Some(*ep))]
                }
            }
            ExplainTarget::Host(s) => return Err(ExplainError::Unknown(s.clone())),
        };
        Ok(want.into_iter().map(|(h, a)| self.listener_diag(h, a, now)).collect())
    }

    /// The listener of host `h` on `port`, or the wildcard address of that port.
    fn listener_on_port(&self, h: HostIdx, port: u16) -> SocketAddr {
        self.hosts[h]
            .listeners
            .iter()
            .find(|l| l.addr.port() == port)
            .map(|l| l.addr)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)))
    }

    /// The server listeners of current findings (of those involving `host`
    /// when given), by host and listening address.
    fn attention(&self, host: Option<&str>) -> Vec<(HostIdx, Option<SocketAddr>)> {
        let mut set: BTreeSet<(HostIdx, Option<SocketAddr>)> = BTreeSet::new();
        for f in self.findings.iter() {
            let server_host = f.subject.server_host();
            if host.is_some_and(|n| server_host != n && f.subject.client_host() != Some(n)) {
                continue;
            }
            if let Some(s) = self.hosts.find(server_host) {
                let addr = f.listener_addr().or_else(|| f.tuple().map(|t| t.remote()));
                set.insert((
                    s,
                    addr.and_then(|a| self.hosts[s].listener_for(a).map(|l| l.addr))
                        .or(addr),
                ));
            }
        }
        set.into_iter().collect()
    }

    fn listener_diag(&self, h: HostIdx, addr: Option<SocketAddr>, now: Clock) -> Diagnosis {
        let host = &self.hosts[h];
        let window = self.risk_window_ms(h).max(60_000);
        let deltas = host.counters.deltas_since(now.mono_ms.saturating_sub(window));
        let listener = addr.and_then(|a| host.listener_for(a));
        let mut seen = Seen::default();
        for f in self.findings.iter() {
            if f.subject.server_host() != host.name {
                continue;
            }
            let on_it = match (listener, f.tuple(), f.listener_addr()) {
                (Some(l), Some(t), _) => host.listener_for(t.remote()).map(|x| x.addr) == Some(l.addr),
                (Some(l), None, Some(fl)) => fl == l.addr,
                (None, _, _) => true,
                _ => false,
            };
            if on_it {
                seen.add(f);
            }
        }
        let syn_sent = listener.map_or(0, |l| self.syn_sent_towards(h, l.addr));
        let ctx = ListenerContext {
            host: &host.name,
            listener,
            sysctls: &host.sysctls,
            deltas: &deltas,
            window_s: window / 1000,
            syn_sent,
            seen: &seen,
        };
        let mut d = listener_diagnosis(&ctx);
        if self.hosts.is_stale(h, now, &self.cfg) {
            d.facts.insert(
                0,
                format!("host {} is stale: its collector has not reported recently", host.name),
            );
        }
        d
    }
}
