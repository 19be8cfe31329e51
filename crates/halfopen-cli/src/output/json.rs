//! The JSON rows the commands print: contracts for scripts (field names and
//! their order are kept; fields are only ever added).
use super::rfc3339;
use halfopen_core::{Coverage, HostView, Process, SocketRecord};
pub use halfopen_report::rows::{history_json, incident_json, orphan_json, HistoryJson, IncidentJson, OrphanJson};
use serde::Serialize;

/// One collector as `halfopen hosts --json` prints it.
#[derive(Debug, Serialize, PartialEq)]
pub struct HostJson {
    pub host_id: String,
    pub addresses: Vec<String>,
    pub last_report: Option<String>,
    pub sockets: u64,
    pub client_sockets: u64,
    pub server_sockets: u64,
    pub listeners: u32,
    pub stale: bool,
    pub connected: bool,
    pub source: String,
    pub interval_ms: u32,
    pub peer: String,
    /// Disconnected for longer than --gone-after.
    pub gone: bool,
    /// When its last session ended (RFC 3339; null while connected).
    pub disconnected_since: Option<String>,
    /// A second live collector claims this host id and is refused (who).
    pub conflict: Option<String>,
    /// Its addresses that another live host claims too (never judged).
    pub shared_addresses: Vec<String>,
    /// What its collector cannot see.
    pub blind_spots: Vec<String>,
    /// NAT: "visible", "absent" (no conntrack) or "unknown: why".
    pub nat: String,
    /// Where its collector runs.
    pub machine_id: String,
    pub boot_id: String,
    /// The netns cookie (or nsfs inode) of this host's network namespace;
    /// 0 when unknown. For a machine's own namespace that is where its
    /// collector runs; for `HOSTID/NAME` hosts it is the namespace NAME.
    pub netns_cookie: u64,
    pub collector_pid: u32,
    /// Set when this host is one network namespace of a machine (host id
    /// `PARENT/NAME`, from `halfopen collector --netns`): the machine's host
    /// id (`parent`), the namespace's readable name (`netns`: the NAME of
    /// `PARENT/NAME`), and the container and Kubernetes pod
    /// (`namespace/name`) it belongs to; null when unknown or not one (a
    /// machine's own namespace has all four null).
    pub parent: Option<String>,
    pub netns: Option<String>,
    pub container: Option<String>,
    pub pod: Option<String>,
}

pub fn host_json(h: &HostView) -> HostJson {
    HostJson {
        host_id: h.name.clone(),
        addresses: h.addresses.iter().map(|a| a.to_string()).collect(),
        last_report: h.last_report_ms.map(rfc3339),
        sockets: h.sockets,
        client_sockets: h.client_sockets,
        server_sockets: h.server_sockets,
        listeners: h.listeners,
        stale: h.stale,
        connected: h.connected,
        source: h.source.to_string(),
        interval_ms: h.interval_ms,
        peer: h.peer.clone(),
        gone: h.gone,
        disconnected_since: h.disconnected_since_ms.map(rfc3339),
        conflict: h.conflict.clone(),
        shared_addresses: h.shared_addresses.iter().map(|a| a.to_string()).collect(),
        blind_spots: h.blind_spots.clone(),
        nat: h.nat.clone(),
        machine_id: h.instance.machine_id.clone(),
        boot_id: h.instance.boot_id.clone(),
        netns_cookie: h.instance.netns,
        collector_pid: h.instance.pid,
        parent: h.parent.clone(),
        netns: h.netns_name.clone(),
        container: h.container.clone(),
        pod: h.pod.clone(),
    }
}

/// The coverage as `halfopen coverage --json` prints it.
#[derive(Debug, Serialize, PartialEq)]
pub struct CoverageJson {
    /// Whether answers cover everything (every host fresh, nothing unseen).
    pub complete: bool,
    pub hosts: u32,
    pub fresh: u32,
    pub stale: Vec<String>,
    pub disconnected: Vec<String>,
    pub gone: Vec<String>,
    pub conflicts: Vec<String>,
    pub shared_addresses: Vec<SharedJson>,
    pub unmonitored_connections: u64,
    pub unmonitored_servers: u64,
    pub unmonitored_top: Vec<UnmonitoredJson>,
    pub blind_spots: Vec<BlindSpotJson>,
    /// The same, in sentences (what the human all-clear prints).
    pub not_covered: Vec<String>,
    /// The reconciler's database writes; null without a database.
    pub store: Option<StoreJson>,
}

/// `coverage --json`'s `store`: whether findings are being recorded.
#[derive(Debug, Serialize, PartialEq)]
pub struct StoreJson {
    /// Whether writes fail now (they are retried until they succeed).
    pub failing: bool,
    /// RFC 3339, since when they fail; null while they succeed.
    pub failing_since: Option<String>,
    /// The last write error while they fail.
    pub error: Option<String>,
    /// Records queued, not yet written.
    pub pending: u64,
    /// Records the queue holds before it refuses more.
    pub capacity: u64,
    /// Records refused since start because the queue was full.
    pub refused: u64,
    /// Records written since start.
    pub written: u64,
    /// Records SQLite refused for good since start.
    pub dropped: u64,
    /// The same, in one sentence (what the human footer prints); null while writes succeed.
    pub not_recorded: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SharedJson {
    pub address: String,
    pub hosts: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct UnmonitoredJson {
    pub server: String,
    pub connections: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct BlindSpotJson {
    pub host: String,
    pub what: String,
}

pub fn coverage_json(c: &Coverage) -> CoverageJson {
    CoverageJson {
        complete: c.complete(),
        hosts: c.hosts,
        fresh: c.fresh,
        stale: c.stale.clone(),
        disconnected: c.disconnected.clone(),
        gone: c.gone.clone(),
        conflicts: c.conflicts.clone(),
        shared_addresses: c
            .shared_addresses
            .iter()
            .map(|s| SharedJson {
                address: s.addr.to_string(),
                hosts: s.hosts.clone(),
            })
            .collect(),
        unmonitored_connections: c.unmonitored.connections,
        unmonitored_servers: c.unmonitored.servers,
        unmonitored_top: c
            .unmonitored
            .top
            .iter()
            .map(|(s, n)| UnmonitoredJson {
                server: s.to_string(),
                connections: *n,
            })
            .collect(),
        blind_spots: c
            .blind_spots
            .iter()
            .map(|b| BlindSpotJson {
                host: b.host.clone(),
                what: b.what.clone(),
            })
            .collect(),
        not_covered: super::table::not_covered(c),
        store: c.store.as_ref().map(|st| StoreJson {
            failing: st.failing(),
            failing_since: st.failing_since_ms.map(super::rfc3339),
            error: st.error.clone(),
            pending: st.pending,
            capacity: st.capacity,
            refused: st.refused,
            written: st.written,
            dropped: st.dropped,
            not_recorded: super::table::not_recorded(c),
        }),
    }
}

/// One socket as `halfopen snapshot --json` prints it. Borrows the record's
/// process; the endpoints are formatted while serializing, not stored.
#[derive(Debug, Serialize, PartialEq)]
pub struct SnapshotJson<'a> {
    pub state: &'static str,
    pub side: &'static str,
    pub local: Endpoint,
    pub remote: Endpoint,
    pub inode: u64,
    pub uid: u32,
    pub cookie: u64,
    pub keepalive: bool,
    pub pid: Option<u32>,
    pub process: Option<&'a str>,
    pub cmdline: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_acked: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_data_recv_ms: Option<u32>,
}

/// An endpoint that serializes as `SocketAddr`'s Display does
/// ("198.18.0.1:3306", "[2001:db8::1]:443"), IPv4 without going through
/// `fmt` (most of `snapshot --json`'s user time went to that).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint(pub std::net::SocketAddr);

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            std::net::SocketAddr::V4(a) => {
                let mut buf = [0u8; 21]; // 255.255.255.255:65535
                let mut n = 0;
                for (i, o) in a.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        buf[n] = b'.';
                        n += 1;
                    }
                    n += write_decimal(u32::from(o), &mut buf[n..]);
                }
                buf[n] = b':';
                n += 1;
                n += write_decimal(u32::from(a.port()), &mut buf[n..]);
                s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default())
            }
            v6 => s.collect_str(&v6),
        }
    }
}

/// Writes `v` in decimal at the start of `out` (which has room); its length.
fn write_decimal(mut v: u32, out: &mut [u8]) -> usize {
    let mut tmp = [0u8; 10];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    out[..len].copy_from_slice(&tmp[i..]);
    len
}

pub fn snapshot_json<'a>(r: &SocketRecord, p: Option<&'a Process>) -> SnapshotJson<'a> {
    SnapshotJson {
        state: r.state.name(),
        side: match r.side {
            halfopen_core::Side::Client => "client",
            halfopen_core::Side::Server => "server",
        },
        local: Endpoint(r.tuple.local()),
        remote: Endpoint(r.tuple.remote()),
        inode: r.inode,
        uid: r.uid,
        cookie: r.cookie,
        keepalive: r.keepalive,
        pid: p.map(|p| p.pid),
        process: p.map(|p| p.comm.as_str()),
        cmdline: p.map(|p| p.cmdline.as_str()),
        bytes_received: r.info.map(|i| i.bytes_received),
        bytes_acked: r.info.map(|i| i.bytes_acked),
        last_data_recv_ms: r.info.map(|i| i.last_data_recv_ms),
    }
}
