//! Sessions and reports: a collector connects (replacing its own older
//! session at once, refused while another live instance holds its host id),
//! sends a full table (possibly in chunks) and then numbered deltas; each is
//! applied to the host's table, and only the changed sockets and the other
//! ends of their tuples are judged again. A delta whose `seq` is not the
//! next one is answered with a resync, and nothing is judged against the
//! host until its full table is in place.
use crate::findings::FKey;
use crate::hosts::{Conflict, HostIdx};
use crate::table::{Entry, Table};
use crate::{Action, Clock, ConnectError, Engine, Notice};

/// A session opened: its host and id, and what the engine asks to be done
/// (notices of addresses that changed owner).
#[derive(Debug)]
pub struct Connected {
    pub host: HostIdx,
    pub session: u64,
    pub actions: Vec<Action>,
}
use halfopen_core::{GoneReason, Hello, NatEntry, Report, Tuple};
use std::collections::BTreeMap;
use std::net::IpAddr;

impl Engine {
    /// A collector opened a session. Returns its host index and session id;
    /// an older session of the same collector (same machine, boot and
    /// network namespace), or a session that stopped reporting, is replaced.
    /// Another live collector holding the host id is a conflict: refused.
    pub fn connect(&mut self, hello: Hello, peer: String, now: Clock) -> Result<Connected, ConnectError> {
        if self.hosts.find(&hello.host_id).is_none() && self.hosts.known() >= self.cfg.max_hosts {
            self.stats.hosts_refused += 1;
            return Err(ConnectError::TooManyHosts {
                host: hello.host_id,
                limit: self.cfg.max_hosts,
            });
        }
        let h = self.hosts.index(&hello.host_id, now);
        let host = &self.hosts[h];
        if host.connected && !host.instance.same_place(&hello.instance) && self.hosts.reporting(h, now, &self.cfg) {
            self.stats.conflicts_refused += 1;
            let err = ConnectError::Conflict {
                host: hello.host_id.clone(),
                holder: Box::new(host.instance.clone()),
                holder_peer: host.peer.clone(),
                refused: Box::new(hello.instance.clone()),
            };
            let host = &mut self.hosts[h];
            let first = host
                .conflict
                .as_ref()
                .filter(|c| c.instance == hello.instance)
                .map_or(now, |c| c.first);
            host.conflict = Some(Conflict {
                instance: hello.instance,
                peer,
                first,
                last: now,
            });
            return Err(err);
        }
        let session = self.next_session;
        self.next_session += 1;
        self.drop_pending_for(h);
        let host = &mut self.hosts[h];
        if !host.instance.boot_id.is_empty()
            && !hello.instance.boot_id.is_empty()
            && host.instance.machine_id == hello.instance.machine_id
            && host.instance.boot_id != hello.instance.boot_id
        {
            host.rebooted_at = Some(now);
        }
        // The refused collector is the one that holds the id now: no conflict.
        if host
            .conflict
            .as_ref()
            .is_some_and(|c| c.instance.same_place(&hello.instance))
        {
            host.conflict = None;
        }
        host.session = session;
        host.connected = true;
        host.disconnected_at = None;
        host.peer = peer;
        host.instance = hello.instance;
        host.blind_spots = hello.blind_spots;
        host.parent = hello.parent;
        host.netns_name = hello.netns_name;
        host.container = hello.container;
        host.pod = hello.pod;
        host.interval_ms = hello.interval_ms.max(1);
        host.source = hello.source;
        host.seq = None;
        host.full_buf = None;
        host.last_report = Some(now);
        self.hosts.set_addresses(h, hello.addresses);
        let mut actions = Vec::new();
        self.owners_changed(h, &mut actions);
        Ok(Connected {
            host: h,
            session,
            actions,
        })
    }

    /// The latest refused instance of host `h`, described, while it keeps
    /// trying (the last attempt within two minutes).
    pub(crate) fn conflict_of(&self, h: HostIdx, now: Clock) -> Option<String> {
        let c = self.hosts[h].conflict.as_ref()?;
        (now.mono_ms.saturating_sub(c.last.mono_ms) <= 120_000).then(|| {
            format!(
                "a second collector ({}, from {}) claims this host id and has been refused for {}",
                c.instance,
                c.peer,
                crate::advice::humanize(now.mono_ms.saturating_sub(c.first.mono_ms) / 1000)
            )
        })
    }

    /// The session ended (stream closed or broken). Nothing is judged against
    /// the host until it is back with a full table.
    pub fn disconnect(&mut self, h: HostIdx, session: u64, now: Clock) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(host) = self.hosts.get(h) else {
            return out;
        };
        if host.session != session || !host.connected {
            return out;
        }
        let host = &mut self.hosts[h];
        host.connected = false;
        host.disconnected_at = Some(now);
        host.seq = None;
        host.full_buf = None;
        self.drop_pending_for(h);
        self.owners_changed(h, &mut out);
        out
    }

    /// After host `h`'s addresses or connection changed: ownership is
    /// recomputed, handovers become notices, and sockets involving the
    /// hosts concerned are re-judged at the next sweep.
    fn owners_changed(&mut self, h: HostIdx, out: &mut Vec<Action>) {
        let moved = self.hosts.rebuild_owners();
        self.deferred.changed.insert(h);
        for m in moved {
            for name in m.from.iter().chain(m.to.iter()) {
                if let Some(x) = self.hosts.find(name) {
                    self.deferred.changed.insert(x);
                }
            }
            out.push(Action::Notice(Notice::AddressMoved(m)));
        }
    }

    fn set_addresses(&mut self, h: HostIdx, addrs: Vec<IpAddr>, out: &mut Vec<Action>) {
        if self.hosts.set_addresses(h, addrs) {
            self.owners_changed(h, out);
        }
    }

    /// Applies a report. Returns actions (a resync request on a sequence gap,
    /// findings that appeared or went away).
    pub fn report(&mut self, h: HostIdx, session: u64, mut r: Report, now: Clock) -> Vec<Action> {
        let mut out = Vec::new();
        if self.hosts.get(h).map(|x| (x.session, x.connected)) != Some((session, true)) {
            return out;
        }
        self.stats.reports += 1;
        self.hosts[h].last_report = Some(now);
        // Facts of the server's kernel, whatever becomes of the table below.
        let witnessed = std::mem::take(&mut r.witnessed);
        self.on_witnessed(h, witnessed, now, &mut out);
        if !r.addresses.is_empty() {
            self.set_addresses(h, std::mem::take(&mut r.addresses), &mut out);
        }
        if let Some(b) = r.blind_spots.take() {
            self.hosts[h].blind_spots = b;
        }
        // A table beyond the limit ends the session (the buffer of a full
        // table being received counts): memory stays bounded per host.
        let max = self.cfg.max_sockets_per_host;
        let held = match (&self.hosts[h].full_buf, r.full) {
            (Some((seq, buf)), true) if *seq == r.seq => buf.len(),
            (_, true) => 0,
            _ => self.hosts[h].table.len(),
        };
        if held.saturating_add(r.upserted.len()) > max {
            self.stats.tables_refused += 1;
            out.extend(self.disconnect(h, session, now));
            out.push(Action::Close {
                host: h,
                session,
                reason: format!(
                    "the table of host {:?} exceeds {max} sockets (the reconciler's --max-sockets-per-host): the \
                     session is ended",
                    self.hosts[h].name
                ),
            });
            return out;
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
            // The NAT entries (last chunk), then the sockets: the other end of
            // a translated socket must be known before it is judged.
            self.apply_nat(h, std::mem::take(&mut r.nat), &[], true, now, &mut out);
            let host = &mut self.hosts[h];
            let (_, records) = host.full_buf.take().unwrap_or_default();
            let new = Table::from_records(&records, &host.table, now.mono_ms);
            let old = std::mem::replace(&mut host.table, new);
            host.seq = Some(r.seq);
            for (t, _) in old.iter() {
                if !self.hosts[h].table.contains(t) {
                    self.on_removed(h, *t, now, &mut out);
                }
            }
            // Findings restored from the store (or kept over a reconnect)
            // whose socket is not in the new table are gone.
            for key in self.findings.held_by(h) {
                // A dropped handshake is, by definition, not in its server's table.
                if let FKey::Conn(k, _, t) = key {
                    if k != halfopen_core::FindingKind::DroppedHandshake && !self.hosts[h].table.contains(&t) {
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
            let removed_nat = std::mem::take(&mut r.nat_removed);
            self.apply_nat(h, std::mem::take(&mut r.nat), &removed_nat, false, now, &mut out);
            for t in &r.removed {
                if self.hosts[h].table.remove(t).is_some() {
                    self.on_removed(h, *t, now, &mut out);
                }
            }
            for rec in &r.upserted {
                let e = Entry::of(rec, now.mono_ms);
                self.hosts[h].table.insert(rec.tuple, e);
                let e = self.hosts[h].table.get(&rec.tuple).copied().unwrap_or(e);
                self.on_upsert(h, rec.tuple, e, now, &mut out);
            }
        }
        if r.last_chunk {
            self.host_state_report(h, r, now, &mut out);
        }
        out
    }

    /// NAT entries from host `h`: a full set (replacing what it had) or a
    /// delta. Sockets whose other end the change may move are judged again.
    fn apply_nat(
        &mut self,
        h: HostIdx,
        upserted: Vec<NatEntry>,
        removed: &[Tuple],
        full: bool,
        now: Clock,
        out: &mut Vec<Action>,
    ) {
        if upserted.is_empty() && removed.is_empty() && !full {
            return;
        }
        let mut touched: Vec<Tuple> = Vec::new();
        if full {
            touched.extend(self.hosts[h].nat.iter().flat_map(|(o, r)| [*o, *r]));
            self.hosts
                .nat_replace(h, upserted.iter().map(|n| (n.original, n.reply)));
        } else {
            for o in removed {
                if let Some(r) = self.hosts[h].nat.get(o).copied() {
                    touched.extend([*o, r]);
                }
                self.hosts.nat_remove(h, o);
            }
            for n in &upserted {
                self.hosts.nat_insert(h, n.original, n.reply);
            }
        }
        touched.extend(upserted.iter().flat_map(|n| [n.original, n.reply]));
        // Each tuple is held by the host that owns its local address.
        for t in touched {
            let Some(holder) = self.hosts.owner_of(t.local_ip()) else {
                continue;
            };
            self.confirm.remove(&crate::join::SocketKey { host: holder, tuple: t });
            if let Some(&e) = self.hosts[holder].table.get(&t) {
                self.judge(holder, t, e, now, out);
            }
        }
    }

    /// The host-level part of a report: listeners, counters, sysctls, silent
    /// sockets; then the findings that depend on them.
    fn host_state_report(&mut self, h: HostIdx, r: Report, now: Clock, out: &mut Vec<Action>) {
        let host = &mut self.hosts[h];
        for l in &r.listeners {
            match host.listener_since.get(&l.addr) {
                Some((inode, _)) if *inode == l.inode => {}
                // Another socket on a known address: the listener restarted.
                Some(_) => {
                    host.listener_since.insert(l.addr, (l.inode, Some(now)));
                }
                // First sighting: when it started is not known.
                None => {
                    host.listener_since.insert(l.addr, (l.inode, None));
                }
            }
        }
        host.listeners = r.listeners;
        if !r.sysctls.is_empty() {
            host.sysctls = r.sysctls;
        }
        let deltas = host
            .counters
            .record(now.mono_ms, r.counters)
            .cloned()
            .unwrap_or_default();
        let drops: BTreeMap<String, u64> = host
            .listeners
            .iter()
            .filter_map(|l| Some((l.addr.to_string(), l.drops?)))
            .collect();
        let dropped = host
            .listener_drops
            .record(now.mono_ms, drops)
            .is_some_and(|d| d.values().any(|v| *v > 0));
        host.owner_errors = r.stats.permission_errors;
        host.nat_state = r.nat_state;
        host.silent = r
            .silent
            .into_iter()
            .map(|s| (s.tuple, (s.silent_ms, s.process)))
            .collect();
        self.judge_stalled(h, now, out);
        self.judge_listeners(h, now, out);
        self.judge_accept(h, now, out);
        let sign = dropped || halfopen_core::counters::overflowed(&deltas) || self.findings.serves(h);
        self.sample(h, deltas, sign, now, out);
    }

    /// A sample of host `h`'s listeners and counters for the history: out
    /// while there are signs (and for a while after), else kept as lead-in.
    fn sample(&mut self, h: HostIdx, deltas: BTreeMap<String, u64>, sign: bool, now: Clock, out: &mut Vec<Action>) {
        let host = &mut self.hosts[h];
        let s = halfopen_core::Sample {
            host: host.name.clone(),
            at_ms: now.wall_ms,
            deltas,
            listeners: host
                .listeners
                .iter()
                .map(|l| halfopen_core::ListenerPoint {
                    addr: l.addr,
                    queue: l.queue,
                    backlog: l.backlog,
                    drops: l.drops,
                })
                .collect(),
        };
        if sign {
            host.sampling_until = now.mono_ms + crate::SAMPLE_LINGER_MS;
            out.extend(host.lead_in.drain(..).map(Action::Sample));
        }
        if now.mono_ms <= host.sampling_until {
            out.push(Action::Sample(s));
        } else {
            host.lead_in.push_back(s);
            while host.lead_in.len() > crate::SAMPLE_LEAD_IN {
                host.lead_in.pop_front();
            }
        }
    }
}
