//! The order findings are listed and paged in, and the cursor a client
//! carries between pages. The cursor is the last finding's key, so a
//! finding that appears or goes between pages is listed or not, but never
//! twice.
use crate::findings::FindingSet;
use halfopen_core::{Finding, FindingKind, Subject};
use std::net::SocketAddr;

/// Kind, server end, client end, listener, client host, server host. No two
/// current findings share it (the engine keys a finding by kind, holder host
/// and tuple, all of which it holds), and it never changes while the finding
/// is current: the listener is the subject of a listener_at_risk finding,
/// never a connection's evidence (which later reports may fill in).
pub type OrderKey<'a> = (
    FindingKind,
    Option<SocketAddr>,
    Option<SocketAddr>,
    Option<SocketAddr>,
    &'a str,
    &'a str,
);

/// A finding's [`OrderKey`].
pub fn order_key(f: &Finding) -> OrderKey<'_> {
    let t = f.tuple();
    (
        f.kind,
        t.map(|t| t.remote()),
        t.map(|t| t.local()),
        match f.subject {
            Subject::Listener { addr, .. } => Some(addr),
            Subject::Connection { .. } => None,
        },
        f.subject.client_host().unwrap_or(""),
        f.subject.server_host(),
    )
}

/// Where a page of findings ended: the last finding's [`OrderKey`], owned,
/// and carried by clients as an opaque token ([`PageCursor::token`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageCursor {
    kind: FindingKind,
    remote: Option<SocketAddr>,
    local: Option<SocketAddr>,
    listener: Option<SocketAddr>,
    client_host: String,
    server_host: String,
}

impl PageCursor {
    pub fn of(f: &Finding) -> PageCursor {
        let (kind, remote, local, listener, client_host, server_host) = order_key(f);
        PageCursor {
            kind,
            remote,
            local,
            listener,
            client_host: client_host.to_string(),
            server_host: server_host.to_string(),
        }
    }

    pub fn key(&self) -> OrderKey<'_> {
        (
            self.kind,
            self.remote,
            self.local,
            self.listener,
            &self.client_host,
            &self.server_host,
        )
    }

    /// `kind~remote~local~listener~hex(client host)~hex(server host)`, `-`
    /// for an absent address: printable, and no host name can break it.
    pub fn token(&self) -> String {
        let addr = |a: Option<SocketAddr>| a.map_or_else(|| "-".to_string(), |a| a.to_string());
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        format!(
            "{}~{}~{}~{}~{}~{}",
            self.kind,
            addr(self.remote),
            addr(self.local),
            addr(self.listener),
            hex(&self.client_host),
            hex(&self.server_host)
        )
    }

    /// Reads a [`PageCursor::token`]; None if it is not one.
    pub fn parse(token: &str) -> Option<PageCursor> {
        let mut it = token.split('~');
        let mut next = || it.next();
        let kind = next()?.parse::<FindingKind>().ok()?;
        let addr = |s: &str| -> Option<Option<SocketAddr>> {
            if s == "-" {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        };
        let unhex = |s: &str| -> Option<String> {
            if !s.len().is_multiple_of(2) {
                return None;
            }
            let bytes = (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            String::from_utf8(bytes).ok()
        };
        let c = PageCursor {
            kind,
            remote: addr(next()?)?,
            local: addr(next()?)?,
            listener: addr(next()?)?,
            client_host: unhex(next()?)?,
            server_host: unhex(next()?)?,
        };
        next().is_none().then_some(c)
    }
}

/// Up to `limit` findings of `kind` (all if None) after `after`, in order,
/// and the cursor of the last one when more follow.
pub(crate) fn page<'a>(
    set: &'a FindingSet,
    kind: Option<FindingKind>,
    after: Option<&PageCursor>,
    limit: usize,
) -> (Vec<&'a Finding>, Option<PageCursor>) {
    let mut v: Vec<&Finding> = set
        .iter()
        .filter(|f| kind.is_none_or(|k| f.kind == k) && after.is_none_or(|a| order_key(f) > a.key()))
        .collect();
    let more = v.len() > limit;
    if more {
        v.select_nth_unstable_by(limit, |a, b| order_key(a).cmp(&order_key(b)));
        v.truncate(limit);
    }
    v.sort_unstable_by(|a, b| order_key(a).cmp(&order_key(b)));
    let next = if more {
        v.last().map(|f| PageCursor::of(f))
    } else {
        None
    };
    (v, next)
}
