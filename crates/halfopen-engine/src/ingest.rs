//! Sessions and reports: a collector connects (superseding its older
//! session), sends a full table (possibly in chunks) and then numbered
//! deltas; each is applied to the host's table, and only the changed sockets
//! and the other ends of their tuples are judged again. A delta whose `seq`
//! is not the next one is answered with a resync, and nothing is judged
//! against the host until its full table is in place.
use crate::findings::FKey;
use crate::hosts::HostIdx;
use crate::table::{Entry, Table};
use crate::{Action, Clock, Engine};
use halfopen_core::{GoneReason, Hello, Report};
use std::net::IpAddr;

impl Engine {
    /// A collector opened a session. Returns its host index and session id;
    /// an older session of the same host id is superseded.
    pub fn connect(&mut self, hello: Hello, peer: String, now: Clock) -> (HostIdx, u64) {
        let h = self.hosts.index(&hello.host_id);
        let session = self.next_session;
        self.next_session += 1;
        self.drop_pending_for(h);
        let host = &mut self.hosts[h];
        host.session = session;
        host.connected = true;
        host.peer = peer;
        host.interval_ms = hello.interval_ms.max(1);
        host.source = hello.source;
        host.seq = None;
        host.full_buf = None;
        host.last_report = Some(now);
        self.set_addresses(h, hello.addresses);
        (h, session)
    }

    /// The session ended (stream closed or broken). Nothing is judged against
    /// the host until it is back with a full table.
    pub fn disconnect(&mut self, h: HostIdx, session: u64) {
        let Some(host) = self.hosts.get(h) else {
            return;
        };
        if host.session != session {
            return;
        }
        let host = &mut self.hosts[h];
        host.connected = false;
        host.seq = None;
        host.full_buf = None;
        self.drop_pending_for(h);
    }

    fn set_addresses(&mut self, h: HostIdx, addrs: Vec<IpAddr>) {
        if self.hosts.set_addresses(h, addrs) {
            self.deferred.changed.insert(h);
        }
    }

    /// Applies a report. Returns actions (a resync request on a sequence gap,
    /// findings that appeared or went away).
    pub fn report(&mut self, h: HostIdx, session: u64, mut r: Report, now: Clock) -> Vec<Action> {
        let mut out = Vec::new();
        if self.hosts.get(h).map(|x| x.session) != Some(session) {
            return out;
        }
        self.stats.reports += 1;
        self.hosts[h].last_report = Some(now);
        if !r.addresses.is_empty() {
            self.set_addresses(h, std::mem::take(&mut r.addresses));
        }
        if r.full {
            let host = &mut self.hosts[h];
            match &mut host.full_buf {
                Some((seq, buf)) if *seq == r.seq => buf.append(&mut r.upserted),
                _ => host.full_buf = Some((r.seq, std::mem::take(&mut r.upserted))),
            }
            if !r.last_chunk {
                return out;
            }
            let (_, records) = host.full_buf.take().unwrap_or_default();
            let old = std::mem::replace(&mut host.table, Table::from_records(&records));
            host.seq = Some(r.seq);
            for (t, _) in old.iter() {
                if !self.hosts[h].table.contains(t) {
                    self.on_removed(h, *t, now, &mut out);
                }
            }
            // Findings restored from the store (or kept over a reconnect)
            // whose socket is not in the new table are gone.
            for key in self.findings.held_by(h) {
                if let FKey::Conn(_, _, t) = key {
                    if !self.hosts[h].table.contains(&t) {
                        out.extend(self.findings.finish(&key, GoneReason::ClientClosed, now.wall_ms));
                    }
                }
            }
            let entries: Vec<_> = self.hosts[h].table.iter().map(|(t, e)| (*t, *e)).collect();
            // Every socket of the table is judged here; sockets elsewhere whose
            // other end is here wait in `deferred` until the next tick.
            self.hosts[h].own_skipped = false;
            for (t, e) in entries {
                self.on_upsert(h, t, e, now, &mut out);
            }
        } else {
            let expected = self.hosts[h].seq.map(|s| s + 1);
            if expected != Some(r.seq) {
                let reason = match expected {
                    None => "delta before a full table".to_string(),
                    Some(e) => format!("sequence gap: expected {e}, got {}", r.seq),
                };
                self.hosts[h].seq = None;
                self.stats.resyncs_requested += 1;
                out.push(Action::Resync {
                    host: h,
                    session,
                    reason,
                });
                return out;
            }
            self.hosts[h].seq = Some(r.seq);
            for t in &r.removed {
                if self.hosts[h].table.remove(t).is_some() {
                    self.on_removed(h, *t, now, &mut out);
                }
            }
            for rec in &r.upserted {
                let e = Entry::of(rec);
                self.hosts[h].table.insert(rec.tuple, e);
                self.on_upsert(h, rec.tuple, e, now, &mut out);
            }
        }
        if r.last_chunk {
            self.host_state_report(h, r, now, &mut out);
        }
        out
    }

    /// The host-level part of a report: listeners, counters, sysctls, silent
    /// sockets; then the findings that depend on them.
    fn host_state_report(&mut self, h: HostIdx, r: Report, now: Clock, out: &mut Vec<Action>) {
        let host = &mut self.hosts[h];
        host.listeners = r.listeners;
        if !r.sysctls.is_empty() {
            host.sysctls = r.sysctls;
        }
        host.counters.record(now.mono_ms, r.counters);
        host.silent = r.silent.into_iter().map(|s| (s.tuple, s.silent_ms)).collect();
        self.judge_stalled(h, now, out);
        self.judge_listeners(h, now, out);
    }
}
