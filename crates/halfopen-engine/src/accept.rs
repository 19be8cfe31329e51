//! accept_stalled: a listener whose accept queue holds a connection the
//! server has not accepted for longer than `accept_stall_after` (a frozen
//! PostgreSQL postmaster, a blocked Node.js event loop, a server out of
//! workers). Nothing overflows and no counter rises, so only the age of
//! what waits in the queue tells: each queued server end (ESTABLISHED,
//! inode 0) is timed from when the engine first saw it.
use crate::findings::FKey;
use crate::hosts::HostIdx;
use crate::{Action, Clock, Engine};
use halfopen_core::{Evidence, Finding, FindingKind, GoneReason, Subject};
use std::collections::HashMap;
use std::net::SocketAddr;

impl Engine {
    /// accept_stalled for host `s` after its report.
    pub(crate) fn judge_accept(&mut self, s: HostIdx, now: Clock, out: &mut Vec<Action>) {
        let after_s = self.cfg.accept_stall_after_ms / 1000;
        let now_s = now.mono_ms / 1000;
        // Per listener: (oldest wait s, queued count).
        let mut stalled: HashMap<SocketAddr, (u64, u32)> = HashMap::new();
        if self.hosts[s].table.queued() > 0 {
            let host = &self.hosts[s];
            for (t, e) in host.table.iter().filter(|(_, e)| e.queued) {
                let Some(l) = host.listener_for(t.local()) else {
                    continue;
                };
                let w = stalled.entry(l.addr).or_insert((0, 0));
                w.0 = w.0.max(now_s.saturating_sub(e.since_s as u64));
                w.1 += 1;
            }
        }
        stalled.retain(|_, (wait, _)| *wait > after_s);
        for key in self.findings.listeners_of(s) {
            if let FKey::Listener(FindingKind::AcceptStalled, _, addr) = key {
                if !stalled.contains_key(&addr) {
                    out.extend(self.findings.finish(&key, GoneReason::Recovered, now.wall_ms));
                }
            }
        }
        for (addr, (wait_s, queued)) in stalled {
            let key = FKey::Listener(FindingKind::AcceptStalled, s, addr);
            let l = self.hosts[s].listeners.iter().find(|l| l.addr == addr);
            let evidence = Evidence {
                listener: l.map(|l| self.hosts[s].sample(l, now.mono_ms.saturating_sub(wait_s * 1000))),
                accept_wait_ms: Some(wait_s * 1000),
                queued: Some(queued),
                sysctls: self.hosts[s].sysctls.clone(),
                ..Default::default()
            };
            if self.findings.get(&key).is_some() {
                self.findings.update_evidence(&key, evidence);
                continue;
            }
            let f = Finding {
                kind: FindingKind::AcceptStalled,
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
