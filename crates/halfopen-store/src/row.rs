//! How a finding is a row of `findings`, and back. A connection's `client`
//! and `server` columns are its endpoints; a listener's `client` is empty
//! and `server` is the listener. `evidence` is the JSON of
//! halfopen_core::Evidence; rows from before it was kept read their
//! `explanation` as the legacy explanation.
use halfopen_core::{
    parse_endpoint, Evidence, Finding, FindingKind, GoneReason, Process, StoredFinding, Subject, Tuple,
};
use rusqlite::Row;

/// The columns that identify a finding's row while it is current:
/// kind, client_host, server_host, client, server, cookie.
pub(crate) type Key = (&'static str, String, String, String, String, i64);

pub(crate) fn key(f: &Finding) -> Key {
    let (client_host, client) = match &f.subject {
        Subject::Connection { tuple, client_host, .. } => (client_host.clone(), tuple.local().to_string()),
        Subject::Listener { .. } => (String::new(), String::new()),
    };
    (
        f.kind.as_str(),
        client_host,
        f.subject.server_host().to_string(),
        client,
        f.subject.server_end().to_string(),
        f.cookie as i64,
    )
}

pub(crate) const KEY_WHERE: &str =
    "kind = ?1 AND client_host = ?2 AND server_host = ?3 AND client = ?4 AND server = ?5 AND cookie = ?6 AND gone_at_ms IS NULL";

/// The columns [`finding_from_row`] reads, in its order.
pub(crate) const COLUMNS: &str =
    "id, kind, client, server, client_host, server_host, cookie, pid, process, cmdline, uid,
    keepalive, first_seen_ms, confirmed_at_ms, listener, server_pid, server_process, server_cmdline,
    explanation, silent_ms, in_accept_queue, server_uid, evidence";

fn process(r: &Row, pid: usize, comm: usize, cmdline: usize, uid: usize) -> rusqlite::Result<Option<Process>> {
    Ok(match r.get::<_, Option<u32>>(pid)? {
        Some(pid) => Some(Process {
            pid,
            comm: r.get::<_, Option<String>>(comm)?.unwrap_or_default(),
            cmdline: r.get::<_, Option<String>>(cmdline)?.unwrap_or_default(),
            uid: r.get::<_, Option<u32>>(uid)?.unwrap_or_default(),
        }),
        None => None,
    })
}

/// A row read with [`COLUMNS`]: the finding, or why it cannot be one (a
/// row edited by hand). SQLite errors are the outer error.
pub(crate) fn finding_from_row(r: &Row) -> rusqlite::Result<Result<Finding, String>> {
    let id: i64 = r.get(0)?;
    let kind: String = r.get(1)?;
    let client: String = r.get(2)?;
    let server: String = r.get(3)?;
    let Ok(kind) = kind.parse::<FindingKind>() else {
        return Ok(Err(format!("row {id}: unknown kind {kind:?}")));
    };
    let server_host: String = r.get(5)?;
    let listener: Option<String> = r.get(14)?;
    let listener = listener.as_deref().and_then(parse_endpoint);
    let subject = match kind {
        FindingKind::ListenerAtRisk => match listener.or_else(|| parse_endpoint(&server)) {
            Some(addr) => Subject::Listener {
                host: server_host,
                addr,
            },
            None => return Ok(Err(format!("row {id}: listener_at_risk without a listener"))),
        },
        _ => match (parse_endpoint(&client), parse_endpoint(&server)) {
            (Some(c), Some(s)) => Subject::Connection {
                tuple: Tuple::new(c, s),
                client_host: r.get(4)?,
                server_host,
            },
            _ => return Ok(Err(format!("row {id}: client={client:?} server={server:?}"))),
        },
    };
    let explanation: Option<String> = r.get(18)?;
    let evidence = match r.get::<_, Option<String>>(22)? {
        Some(json) => match serde_json::from_str::<Evidence>(&json) {
            Ok(e) => e,
            Err(e) => return Ok(Err(format!("row {id}: evidence does not parse: {e}"))),
        },
        // Written before evidence was kept: its words are what there is.
        None => Evidence {
            legacy_explanation: explanation,
            silent_ms: r.get(19)?,
            in_accept_queue: r.get(20)?,
            ..Default::default()
        },
    };
    Ok(Ok(Finding {
        kind,
        subject,
        cookie: r.get::<_, i64>(6)? as u64,
        process: process(r, 7, 8, 9, 10)?,
        server_process: process(r, 15, 16, 17, 21)?,
        keepalive: r.get(11)?,
        first_seen_ms: r.get(12)?,
        confirmed_at_ms: r.get(13)?,
        evidence,
    }))
}

/// [`COLUMNS`], then what a stored finding adds: its end and incident.
pub(crate) const STORED_COLUMNS: &str =
    "id, kind, client, server, client_host, server_host, cookie, pid, process, cmdline, uid,
    keepalive, first_seen_ms, confirmed_at_ms, listener, server_pid, server_process, server_cmdline,
    explanation, silent_ms, in_accept_queue, server_uid, evidence, gone_at_ms, gone_reason, incident";

/// A row read with [`STORED_COLUMNS`], as [`finding_from_row`].
pub(crate) fn stored_from_row(r: &Row) -> rusqlite::Result<Result<StoredFinding, String>> {
    let finding = match finding_from_row(r)? {
        Ok(f) => f,
        Err(e) => return Ok(Err(e)),
    };
    let id: i64 = r.get(0)?;
    let gone_reason = match r.get::<_, Option<String>>(24)? {
        None => None,
        Some(s) => match s.parse::<GoneReason>() {
            Ok(g) => Some(g),
            Err(_) => return Ok(Err(format!("row {id}: unknown gone_reason {s:?}"))),
        },
    };
    Ok(Ok(StoredFinding {
        id,
        finding,
        gone_at_ms: r.get(23)?,
        gone_reason,
        explanation: r.get::<_, Option<String>>(18)?.unwrap_or_default(),
        incident: r.get(25)?,
    }))
}
