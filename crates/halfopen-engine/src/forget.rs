//! Forgetting hosts. A host gone for `forget_after` that nothing refers to
//! any more (no finding names it, no candidate, lookup or deferred
//! judgement involves it) is forgotten and its slot reused, so host ids
//! that come and go (autoscaled fleets, pods, or a peer inventing names)
//! cannot grow the reconciler without bound. With `max_hosts` this bounds
//! the hosts the engine keeps.
use crate::{Action, Clock, Engine, Notice};

/// How often gone hosts are checked, ms.
const CHECK_EVERY_MS: u64 = 60_000;

impl Engine {
    pub(crate) fn forget_gone_hosts(&mut self, now: Clock, out: &mut Vec<Action>) {
        if now.mono_ms < self.deferred.last_forget_mono + CHECK_EVERY_MS {
            return;
        }
        self.deferred.last_forget_mono = now.mono_ms;
        let after = self.cfg.forget_after_ms.max(self.cfg.gone_after_ms);
        for h in 0..self.hosts.len() {
            let host = &self.hosts[h];
            if host.vacant || host.connected {
                continue;
            }
            let since = host.disconnected_at.unwrap_or(host.known_since).mono_ms;
            if now.mono_ms.saturating_sub(since) <= after {
                continue;
            }
            let name = host.name.clone();
            if self.findings.mentions(h, &name) || self.confirm.refers_to(h) || self.deferred.refers_to(h) {
                continue;
            }
            self.hosts.vacate(h, now);
            self.deferred.forget(h);
            self.witnesses.forget(h);
            self.stats.hosts_forgotten += 1;
            out.push(Action::Notice(Notice::HostForgotten { host: name }));
        }
    }
}
