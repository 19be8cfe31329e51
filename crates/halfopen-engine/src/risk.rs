//! listener_at_risk: a listener whose accept queue reached 80% of its
//! backlog, or, when the host's overflow/SYN-cookie counters rose, a
//! listener that is a likely culprit (at least half full, pointed at by
//! orphans, or the host's only routable listener). It stays at risk while
//! its orphans are there and for `risk_intervals` of the host's intervals
//! after the last sign.
use crate::findings::FKey;
use crate::hosts::HostIdx;
use crate::{Action, Clock, Engine};
use halfopen_core::counters::overflowed;
use halfopen_core::{CounterWindow, Evidence, Finding, FindingKind, GoneReason, Listener, Subject};
use std::collections::HashSet;
use std::net::SocketAddr;

/// A listener's accept queue at 80% of its backlog or more.
pub(crate) fn near_full(l: &Listener) -> bool {
    l.backlog > 0 && l.queue as u64 * 10 >= l.backlog as u64 * 8
}

impl Engine {
    /// Client sockets on monitored hosts stuck in SYN-SENT towards listener
    /// `addr` of host `s` (every address of the host for a wildcard).
    pub(crate) fn syn_sent_towards(&self, s: HostIdx, addr: SocketAddr) -> u32 {
        let targets: Vec<SocketAddr> = if addr.ip().is_unspecified() {
            self.hosts[s]
                .addresses
                .iter()
                .filter(|a| halfopen_core::listener_accepts(addr, SocketAddr::new(**a, addr.port())))
                .map(|a| SocketAddr::new(*a, addr.port()))
                .collect()
        } else {
            vec![addr]
        };
        (0..self.hosts.len())
            .map(|h| targets.iter().map(|t| self.hosts[h].table.syn_sent_to(*t)).sum::<u32>())
            .sum()
    }

    /// The window used for "recently": `risk_intervals` of the host's intervals, ms.
    pub(crate) fn risk_window_ms(&self, h: HostIdx) -> u64 {
        self.hosts[h].interval_ms as u64 * self.cfg.risk_intervals.max(1) as u64
    }

    /// listener_at_risk for host `s` after a report.
    pub(crate) fn judge_listeners(&mut self, s: HostIdx, now: Clock, out: &mut Vec<Action>) {
        let window = self.risk_window_ms(s);
        let since = now.mono_ms.saturating_sub(window);
        let deltas = self.hosts[s].counters.deltas_since(since);
        let counters_rose = overflowed(&deltas);
        let listeners = self.hosts[s].listeners.clone();
        let routable = listeners.iter().filter(|l| !l.addr.ip().is_loopback()).count();
        // Each listening socket's own drop counter names the one that
        // overflowed; without it (the /proc source), guess from the queue,
        // the orphans, or the host having one routable listener.
        let drops = self.hosts[s].listener_drops.deltas_since(since);
        let mut hot = Vec::new();
        for l in &listeners {
            let half_full = l.backlog > 0 && l.queue as u64 * 2 >= l.backlog as u64;
            let has_orphans = self.findings.has_orphans(s, l.addr.port());
            let dropped = drops.get(&l.addr.to_string()).is_some_and(|d| *d > 0);
            let culprit = match l.drops {
                Some(_) => dropped,
                None => half_full || has_orphans || (routable == 1 && !l.addr.ip().is_loopback()),
            };
            // Still at risk while the orphans its overflow left are there.
            if near_full(l) || has_orphans || dropped || (counters_rose && culprit) {
                hot.push(l.addr);
            }
        }
        for a in hot {
            self.hosts[s].risk_seen.insert(a, now.mono_ms);
        }
        let live: HashSet<SocketAddr> = listeners.iter().map(|l| l.addr).collect();
        let seen: Vec<(SocketAddr, u64)> = self.hosts[s].risk_seen.iter().map(|(a, t)| (*a, *t)).collect();
        for (addr, last) in seen {
            let key = FKey::Listener(FindingKind::ListenerAtRisk, s, addr);
            if !live.contains(&addr) || now.mono_ms.saturating_sub(last) > window {
                self.hosts[s].risk_seen.remove(&addr);
                out.extend(self.findings.finish(&key, GoneReason::Recovered, now.wall_ms));
                continue;
            }
            let l = listeners.iter().find(|l| l.addr == addr);
            let near = l.is_some_and(near_full);
            let syn_sent = self.syn_sent_towards(s, addr);
            let evidence = Evidence {
                listener: l.map(|l| self.hosts[s].sample(l, since)),
                counters: Some(CounterWindow {
                    window_ms: window,
                    deltas: deltas.clone(),
                }),
                sysctls: self.hosts[s].sysctls.clone(),
                near_full: Some(near),
                syn_sent: (syn_sent > 0).then_some(syn_sent),
                ..Default::default()
            };
            if self.findings.get(&key).is_some() {
                // Keep the evidence of the worst moment: only replace it
                // when there is something to say now.
                if near || counters_rose {
                    self.findings.update_evidence(&key, evidence);
                }
                continue;
            }
            let f = Finding {
                kind: FindingKind::ListenerAtRisk,
                subject: Subject::Listener {
                    host: self.hosts[s].name.clone(),
                    addr,
                },
                cookie: 0,
                process: None,
                server_process: l.and_then(|l| l.process.clone()),
                keepalive: false,
                first_seen_ms: now.wall_ms,
                confirmed_at_ms: now.wall_ms,
                evidence,
            };
            out.push(self.findings.confirm(key, f, s));
        }
    }
}
