//! stalled_greeting: both ends hold the connection, the server speaks first
//! on its port, and the client has received nothing for `stall_after`.
//! Judged from each client host's complete list of silent greeting-port
//! sockets (sent with every report); the server end's inode says whether it
//! still waits in the accept queue or was accepted and left silent.
use crate::confirm::sample;
use crate::findings::FKey;
use crate::hosts::HostIdx;
use crate::{Action, Clock, Engine};
use halfopen_core::{Evidence, Finding, FindingKind, GoneReason, Side, Subject, TcpState, Tuple};

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
        let silent: Vec<(Tuple, u32)> = self.hosts[c].silent.iter().map(|(t, ms)| (*t, *ms)).collect();
        for (t, ms) in silent {
            if ms < self.cfg.stall_after_ms || !self.cfg.greeting_ports.contains(&t.remote_port()) {
                continue;
            }
            let Some(&e) = self.hosts[c].table.get(&t) else {
                continue;
            };
            if e.side != Side::Client || e.state != TcpState::Established {
                continue;
            }
            let Some(other) = self.other_end(c, t) else {
                continue;
            };
            if !self.judgeable(other.host, now) {
                continue;
            }
            // The server must hold it: otherwise this is client_only territory.
            let server = &self.hosts[other.host];
            let Some(&se) = server.table.get(&other.tuple) else {
                continue;
            };
            if se.state != TcpState::Established {
                continue;
            }
            let listener = server.listener_for(other.tuple.local());
            let evidence = Evidence {
                listener: listener.map(sample),
                silent_ms: Some(ms),
                in_accept_queue: Some(se.queued),
                ..Default::default()
            };
            let key = FKey::Conn(FindingKind::StalledGreeting, c, t);
            if self.findings.update_evidence(&key, evidence.clone()).is_some() {
                continue;
            }
            let f = Finding {
                kind: FindingKind::StalledGreeting,
                subject: Subject::Connection {
                    tuple: t,
                    client_host: self.hosts[c].name.clone(),
                    server_host: server.name.clone(),
                },
                cookie: e.cookie,
                process: None,
                server_process: listener.and_then(|l| l.process.clone()),
                keepalive: e.keepalive,
                first_seen_ms: now.wall_ms,
                confirmed_at_ms: now.wall_ms,
                evidence,
            };
            out.push(self.findings.confirm(key, f, other.host));
        }
    }
}
