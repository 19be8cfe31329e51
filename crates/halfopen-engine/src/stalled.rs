//! stalled_greeting: both ends hold the connection, the server speaks first
//! on its port, and the client has received nothing for `stall_after`.
//! Judged from each client host's complete list of silent greeting-port
//! sockets (sent with every report, with each socket's owner). Before it is
//! reported, the server host is asked afresh for its end: still there, and
//! held by which process (the forked session child that accepted it, not
//! only the listener's owner); its inode says whether it still waits in the
//! accept queue or was accepted and left silent.
use crate::confirm::Purpose;
use crate::findings::FKey;
use crate::hosts::HostIdx;
use crate::join::SocketKey;
use crate::{Action, Clock, Engine};
use halfopen_core::{Evidence, Finding, FindingKind, GoneReason, LookupAnswer, Side, Subject, TcpState, Tuple};
use std::collections::HashMap;

impl Engine {
    /// stalled_greeting from host `c`'s complete list of silent sockets.
    pub(crate) fn judge_stalled(&mut self, c: HostIdx, now: Clock, out: &mut Vec<Action>) {
        // Findings whose socket is no longer silent: greeted (or closed).
        for t in self.findings.stalled_of(c) {
            if self.hosts[c].silent.contains_key(&t) {
                continue;
            }
            let reason = if self.hosts[c].table.contains(&t) {
                GoneReason::Greeted
            } else {
                GoneReason::ClientClosed
            };
            let key = FKey::Conn(FindingKind::StalledGreeting, c, t);
            out.extend(self.findings.finish(&key, reason, now.wall_ms));
        }
        if !self.judgeable(c, now) {
            return;
        }
        let silent: Vec<(Tuple, u32)> = self.hosts[c].silent.iter().map(|(t, (ms, _))| (*t, *ms)).collect();
        let mut asks: HashMap<HostIdx, Vec<(SocketKey, Tuple)>> = HashMap::new();
        for (t, ms) in silent {
            let Some(other) = self.stalled_other_end(c, t, ms, now) else {
                continue;
            };
            let key = FKey::Conn(FindingKind::StalledGreeting, c, t);
            if let Some(f) = self.findings.get(&key) {
                let mut evidence = f.evidence.clone();
                evidence.silent_ms = Some(ms);
                evidence.in_accept_queue = self.hosts[other.host].table.get(&other.tuple).map(|e| e.queued);
                self.findings.update_evidence(&key, evidence);
                continue;
            }
            let ck = SocketKey { host: c, tuple: t };
            if !self.confirm.stalled_asked.contains_key(&ck) {
                asks.entry(other.host).or_default().push((ck, other.tuple));
            }
        }
        for (s, list) in asks {
            let keys: Vec<SocketKey> = list.iter().map(|(k, _)| *k).collect();
            let tuples = list.iter().map(|(_, t)| *t).collect();
            let id = self.send(s, Purpose::StalledServer, keys.clone(), tuples, true, now, out);
            for k in keys {
                self.confirm.stalled_asked.insert(k, id);
            }
        }
    }

    /// Where the server end of silent client socket `t` (host `c`) is, when
    /// it qualifies as a stalled greeting: a greeting port, silent long
    /// enough, an ESTABLISHED client socket, and a judgeable server host that
    /// holds the other end ESTABLISHED (otherwise it is client_only's matter).
    fn stalled_other_end(&self, c: HostIdx, t: Tuple, silent_ms: u32, now: Clock) -> Option<SocketKey> {
        if silent_ms < self.cfg.stall_after_ms {
            return None;
        }
        let e = self.hosts[c].table.get(&t)?;
        if e.side != Side::Client || e.state != TcpState::Established {
            return None;
        }
        let other = self.other_end(c, t)?;
        // The port the server speaks first on is its own (after any DNAT).
        if !self.cfg.greeting_ports.contains(&other.tuple.local_port()) {
            return None;
        }
        if !self.judgeable(other.host, now) {
            return None;
        }
        let se = self.hosts[other.host].table.get(&other.tuple)?;
        (se.state == TcpState::Established).then_some(other)
    }

    /// The server host answered for the server ends of silent sockets.
    pub(crate) fn stalled_server_answered(
        &mut self,
        id: u64,
        keys: Vec<SocketKey>,
        by_tuple: &HashMap<Tuple, LookupAnswer>,
        now: Clock,
        out: &mut Vec<Action>,
    ) {
        for ck in keys {
            if self.confirm.stalled_asked.get(&ck) != Some(&id) {
                continue;
            }
            self.confirm.stalled_asked.remove(&ck);
            let c = ck.host;
            let Some((ms, process)) = self.hosts[c].silent.get(&ck.tuple).cloned() else {
                continue; // greeted meanwhile
            };
            let Some(other) = self.stalled_other_end(c, ck.tuple, ms, now) else {
                continue;
            };
            let Some(r) = by_tuple.get(&other.tuple) else {
                continue;
            };
            if !r.socket.is_some_and(|s| s.state == TcpState::Established) {
                continue;
            }
            let Some(&e) = self.hosts[c].table.get(&ck.tuple) else {
                continue;
            };
            let server = &self.hosts[other.host];
            let queued = server.table.get(&other.tuple).is_some_and(|se| se.queued);
            let listener = server.listener_for(other.tuple.local());
            let evidence = Evidence {
                listener: listener.map(|l| server.sample(l, now.mono_ms.saturating_sub(ms as u64))),
                silent_ms: Some(ms),
                in_accept_queue: Some(queued),
                ..Default::default()
            };
            let f = Finding {
                kind: FindingKind::StalledGreeting,
                subject: Subject::Connection {
                    tuple: ck.tuple,
                    client_host: self.hosts[c].name.clone(),
                    server_host: server.name.clone(),
                },
                cookie: e.cookie,
                process,
                // The process holding the accepted socket; while it waits in
                // the queue nobody holds it: the listener's owner must accept it.
                server_process: r.process.clone().or_else(|| listener.and_then(|l| l.process.clone())),
                keepalive: e.keepalive,
                first_seen_ms: now.wall_ms,
                confirmed_at_ms: now.wall_ms,
                evidence,
            };
            let key = FKey::Conn(FindingKind::StalledGreeting, c, ck.tuple);
            out.push(self.findings.confirm(key, f, other.host));
        }
    }
}
