//! Findings: what the reconciler reports (kinds, the connection or listener a
//! finding is about, the evidence it was confirmed on, why it went away),
//! as plain data. The English explanation of a finding is rendered from its
//! [`Evidence`] at the edge (halfopen-engine's `explain`), so the numbers a
//! postmortem needs are kept, not only the sentence.
use crate::keepalive::KeepaliveSysctls;
use crate::model::Process;
use crate::tuple::Tuple;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// The kinds of finding. The names (`client_only`, ...) are a contract:
/// CLI flags, JSON fields and the database use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The client holds the connection ESTABLISHED; the server host has no trace of it.
    ClientOnly,
    /// The server holds it ESTABLISHED; the (monitored) client host has no trace of it.
    ServerOnly,
    /// Both ends hold it, the server speaks first, and the client has received nothing.
    StalledGreeting,
    /// A listener whose queue is near its backlog, or whose host's overflow or
    /// SYN-cookie counters rose, before (or while) anything is lost.
    ListenerAtRisk,
    /// A listener whose accept queue holds connections the server has not
    /// accepted for longer than `accept_stall_after`: its accept loop is stuck.
    AcceptStalled,
    /// The server's kernel witnessed a completed handshake dropped on a full
    /// accept queue, from a client host that is not monitored, on a port
    /// where the server speaks first: the client holds a connection the
    /// server never had and waits for a greeting (only the server is seen).
    DroppedHandshake,
}

impl FindingKind {
    pub const ALL: [FindingKind; 6] = [
        FindingKind::ClientOnly,
        FindingKind::ServerOnly,
        FindingKind::StalledGreeting,
        FindingKind::ListenerAtRisk,
        FindingKind::AcceptStalled,
        FindingKind::DroppedHandshake,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::ClientOnly => "client_only",
            FindingKind::ServerOnly => "server_only",
            FindingKind::StalledGreeting => "stalled_greeting",
            FindingKind::ListenerAtRisk => "listener_at_risk",
            FindingKind::AcceptStalled => "accept_stalled",
            FindingKind::DroppedHandshake => "dropped_handshake",
        }
    }

    /// The `side` JSON field: which end holds what the finding is about.
    pub fn side_label(self) -> &'static str {
        match self {
            FindingKind::ClientOnly | FindingKind::DroppedHandshake => "client_only",
            FindingKind::ServerOnly => "server_only",
            FindingKind::StalledGreeting => "both",
            FindingKind::ListenerAtRisk | FindingKind::AcceptStalled => "server",
        }
    }

    /// Whether findings of this kind are about a connection (not a listener).
    pub fn is_connection(self) -> bool {
        !matches!(self, FindingKind::ListenerAtRisk | FindingKind::AcceptStalled)
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a finding kind; its message lists the kinds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown finding kind {0:?} (kinds: client_only, server_only, stalled_greeting, listener_at_risk, accept_stalled, dropped_handshake)"
)]
pub struct UnknownKind(pub String);

impl FromStr for FindingKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        FindingKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// Why a finding is no longer current. The names are stored in the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoneReason {
    /// The holder closed it (or its state left ESTABLISHED). For client_only
    /// and stalled_greeting the holder is the client.
    ClientClosed,
    /// The other host now holds it too (a client-speaks-first connection healed).
    ServerHasIt,
    /// The same 4-tuple now belongs to another socket.
    Replaced,
    /// stalled_greeting: the client has received data.
    Greeted,
    /// listener_at_risk, accept_stalled: back to normal; or the listener is gone.
    Recovered,
    /// The host holding it has been gone (its collector away) for longer than
    /// `gone_after`: whatever it held is not known any more.
    HostGone,
    /// dropped_handshake: `dropped_handshake_ttl` passed since the drop (the
    /// client is not monitored, so nothing says when it gave up).
    Expired,
}

impl GoneReason {
    pub const ALL: [GoneReason; 7] = [
        GoneReason::ClientClosed,
        GoneReason::ServerHasIt,
        GoneReason::Replaced,
        GoneReason::Greeted,
        GoneReason::Recovered,
        GoneReason::HostGone,
        GoneReason::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GoneReason::ClientClosed => "closed",
            GoneReason::ServerHasIt => "other_end_has_it",
            GoneReason::Replaced => "replaced",
            GoneReason::Greeted => "greeted",
            GoneReason::Recovered => "recovered",
            GoneReason::HostGone => "host_gone",
            GoneReason::Expired => "expired",
        }
    }
}

impl fmt::Display for GoneReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GoneReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        GoneReason::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown gone reason {s:?}"))
    }
}

/// What a finding is about: one connection, or one listening socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A connection, in the client's view: `tuple.local()` is the client end,
    /// `tuple.remote()` the server end.
    Connection {
        tuple: Tuple,
        client_host: String,
        server_host: String,
    },
    /// A listening socket on `host`.
    Listener { host: String, addr: SocketAddr },
}

impl Subject {
    /// The connection's tuple in the client's view; None for a listener.
    pub fn tuple(&self) -> Option<Tuple> {
        match self {
            Subject::Connection { tuple, .. } => Some(*tuple),
            Subject::Listener { .. } => None,
        }
    }

    /// The client's host; None for a listener.
    pub fn client_host(&self) -> Option<&str> {
        match self {
            Subject::Connection { client_host, .. } => Some(client_host),
            Subject::Listener { .. } => None,
        }
    }

    /// The server's host (the listener's host for a listener).
    pub fn server_host(&self) -> &str {
        match self {
            Subject::Connection { server_host, .. } => server_host,
            Subject::Listener { host, .. } => host,
        }
    }

    /// The server end of the connection, or the listener's address.
    pub fn server_end(&self) -> SocketAddr {
        match self {
            Subject::Connection { tuple, .. } => tuple.remote(),
            Subject::Listener { addr, .. } => *addr,
        }
    }

    /// The client end; None for a listener.
    pub fn client_end(&self) -> Option<SocketAddr> {
        self.tuple().map(|t| t.local())
    }
}

/// A listener as it was when a finding was confirmed (the evidence).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerSample {
    /// The listening address (a wildcard stays a wildcard).
    pub addr: SocketAddr,
    /// Accept queue length (`ss -tln` Recv-Q).
    pub queue: u32,
    /// Accept queue limit (`ss -tln` Send-Q): min(listen backlog, somaxconn).
    pub backlog: u32,
    /// The owner has TCP wrappers (libwrap) mapped.
    #[serde(default)]
    pub libwrap: bool,
    /// Drops this listening socket counted (sk_drops) over the evidence's
    /// window: the listener that overflowed, not just the host; None when
    /// the collector cannot read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drops: Option<u64>,
}

/// Increases of the host's TCP counters over a window ending when the
/// finding was confirmed ("TcpExt.ListenOverflows" -> increase).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterWindow {
    /// Length of the window, ms (reconciler time).
    pub window_ms: u64,
    pub deltas: BTreeMap<String, u64>,
}

impl CounterWindow {
    /// The increase of `name` ("TcpExt.ListenOverflows"); 0 when absent.
    pub fn get(&self, name: &str) -> u64 {
        self.deltas.get(name).copied().unwrap_or(0)
    }
}

/// The data a finding was confirmed on, kept with it (and in the store) so a
/// postmortem has the numbers. Every field is optional: what was not known
/// at confirmation is absent, not zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evidence {
    /// The server listener the connection was made to, or the listener at risk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<ListenerSample>,
    /// Counter increases on the server host around the finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counters: Option<CounterWindow>,
    /// The server host's accept-queue and SYN-cookie sysctls.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// stalled_greeting: how long the client has received nothing, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent_ms: Option<u32>,
    /// stalled_greeting: the server end still sits in the accept queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_accept_queue: Option<bool>,
    /// listener_at_risk: the queue was at 80% of its backlog or more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub near_full: Option<bool>,
    /// The connection went through NAT: where, and the real server end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat: Option<NatPath>,
    /// client_only: the server host or its listener restarted after the
    /// connection was made (not an overflow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_restarted: Option<Restart>,
    /// server_only: the client's host is gone (its collector away since this
    /// wall time, ms): it could not confirm; only the server did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_host_gone_since_ms: Option<i64>,
    /// accept_stalled: how long the oldest queued connection has waited, ms,
    /// and how many wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_wait_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<u32>,
    /// listener_at_risk, accept_stalled: client sockets on monitored hosts
    /// stuck in SYN-SENT towards the listener (their SYNs dropped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syn_sent: Option<u32>,
    /// The client host's TCP keepalive sysctls (time, intvl, probes), to say
    /// when keepalive reaps an idle socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_keepalive: Option<KeepaliveSysctls>,
    /// The server's kernel witnessed this connection's handshake being
    /// dropped on a full accept queue (eBPF source on the server host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<Witness>,
    /// The explanation an older halfopen stored with the finding, before its
    /// evidence was kept as data (databases before schema version 2): shown
    /// as it was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_explanation: Option<String>,
}

/// Which way a completed handshake reached the server's kernel when it was
/// dropped. The names (`cookie`, `normal`) are a contract (JSON, store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropPath {
    /// Answered with a SYN cookie (`cookie_v4_check`/`cookie_v6_check`): the
    /// server kept nothing, so the connection cannot come back by itself.
    Cookie,
    /// Through a request socket (`tcp_check_req`): the server keeps it in
    /// SYN_RECV and retransmits its SYN-ACK, so it may still complete once
    /// the queue drains.
    Normal,
}

impl DropPath {
    pub fn as_str(self) -> &'static str {
        match self {
            DropPath::Cookie => "cookie",
            DropPath::Normal => "normal",
        }
    }
}

impl fmt::Display for DropPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DropPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cookie" => Ok(DropPath::Cookie),
            "normal" => Ok(DropPath::Normal),
            _ => Err(format!("unknown drop path {s:?} (paths: cookie, normal)")),
        }
    }
}

/// The server's kernel dropping a connection's completed handshake, as
/// evidence (see [`crate::DropWitness`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    /// The server host's wall clock at the drop, ms since the epoch.
    pub at_ms: i64,
    pub path: DropPath,
    /// The listener's accept queue and its limit at that moment.
    pub queue: u32,
    pub backlog: u32,
}

/// How a connection was translated, as evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NatPath {
    /// The host whose conntrack table translated it.
    pub translated_on: String,
    /// The real server end (the reply tuple's source).
    pub server: SocketAddr,
    /// The client as the server sees it (the reply tuple's destination: the
    /// client, or the address it was masqueraded to).
    pub seen_as: SocketAddr,
}

/// A restart of the server side after the connection was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restart {
    /// "host rebooted" or "listener restarted".
    pub what: String,
    /// Reconciler wall clock when the restart was first seen, ms.
    pub at_ms: i64,
}

/// A confirmed finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub subject: Subject,
    /// Cookie of the socket the finding is about (the holder's); 0 for a listener.
    pub cookie: u64,
    /// The client end's process.
    pub process: Option<Process>,
    /// The server end's process (the accepted socket's owner, or the listener's).
    pub server_process: Option<Process>,
    /// The holder's socket has a keepalive timer armed.
    pub keepalive: bool,
    /// Wall clock of the reconciler, ms since the Unix epoch.
    pub first_seen_ms: i64,
    pub confirmed_at_ms: i64,
    pub evidence: Evidence,
}

impl Finding {
    /// The tuple in the client's view; None for a listener.
    pub fn tuple(&self) -> Option<Tuple> {
        self.subject.tuple()
    }

    /// The real server end: the NAT'd server when the connection was
    /// translated, else what the client dialed (the listener for a listener).
    pub fn server_end(&self) -> SocketAddr {
        self.evidence
            .nat
            .as_ref()
            .map(|n| n.server)
            .unwrap_or_else(|| self.subject.server_end())
    }

    /// The server listener's address: the listener at risk, or the one the
    /// connection was made to when known.
    pub fn listener_addr(&self) -> Option<SocketAddr> {
        match &self.subject {
            Subject::Listener { addr, .. } => Some(*addr),
            Subject::Connection { .. } => self.evidence.listener.as_ref().map(|l| l.addr),
        }
    }
}

/// A finding as listed: plus what is known about its hosts now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindingView {
    pub finding: Finding,
    /// The client's host is stale, disconnected or unknown (always false for a listener).
    pub client_host_stale: bool,
    /// The client's host has been gone (disconnected) for longer than
    /// `gone_after`: what is listed for it is its last word, not current.
    pub client_host_gone: bool,
    /// The container and Kubernetes pod whose network namespace the client
    /// and the server host are (from the hosts' Hellos), when known.
    pub client_container: Option<String>,
    pub client_pod: Option<String>,
    pub server_container: Option<String>,
    pub server_pod: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_display_round_trip() {
        for k in FindingKind::ALL {
            assert_eq!(k.to_string().parse::<FindingKind>(), Ok(k));
        }
        let e = "nope".parse::<FindingKind>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown finding kind \"nope\" (kinds: client_only, server_only, stalled_greeting, listener_at_risk, accept_stalled, dropped_handshake)"
        );
        for r in GoneReason::ALL {
            assert_eq!(r.as_str().parse::<GoneReason>(), Ok(r));
        }
    }

    #[test]
    fn witness_is_kept_as_json_with_its_path_named() {
        let e = Evidence {
            witness: Some(Witness {
                at_ms: 1_700_000_000_123,
                path: DropPath::Cookie,
                queue: 5,
                backlog: 4,
            }),
            ..Default::default()
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(
            json,
            r#"{"witness":{"at_ms":1700000000123,"path":"cookie","queue":5,"backlog":4}}"#
        );
        assert_eq!(serde_json::from_str::<Evidence>(&json).unwrap(), e);
        for p in [DropPath::Cookie, DropPath::Normal] {
            assert_eq!(p.as_str().parse::<DropPath>(), Ok(p));
        }
        assert!("syn".parse::<DropPath>().is_err());
    }

    #[test]
    fn evidence_reads_old_and_partial_json() {
        let e: Evidence = serde_json::from_str("{}").unwrap();
        assert_eq!(e, Evidence::default());
        let e: Evidence =
            serde_json::from_str(r#"{"listener":{"addr":"0.0.0.0:3306","queue":5,"backlog":4},"silent_ms":12000}"#)
                .unwrap();
        assert_eq!(e.listener.unwrap().backlog, 4);
        assert_eq!(e.silent_ms, Some(12_000));
    }
}
