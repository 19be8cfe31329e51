//! Hosts as `halfopen hosts` lists them.
use super::socket::{addrs_from_wire, addrs_to_wire};
use crate::v1;
use halfopen_core::HostView;

pub fn host_to_wire(h: &HostView) -> v1::HostInfo {
    v1::HostInfo {
        host_id: h.name.clone(),
        addresses: addrs_to_wire(&h.addresses),
        last_report_unix_ms: h.last_report_ms.unwrap_or(0),
        sockets: h.sockets,
        client_sockets: h.client_sockets,
        server_sockets: h.server_sockets,
        listeners: h.listeners,
        stale: h.stale,
        connected: h.connected,
        source: h.source.to_string(),
        interval_ms: h.interval_ms,
        peer: h.peer.clone(),
    }
}

/// A host view; an unknown source name reads as the default (netlink).
pub fn host_from_wire(h: &v1::HostInfo) -> HostView {
    HostView {
        name: h.host_id.clone(),
        addresses: addrs_from_wire(&h.addresses),
        last_report_ms: (h.last_report_unix_ms != 0).then_some(h.last_report_unix_ms),
        sockets: h.sockets,
        client_sockets: h.client_sockets,
        server_sockets: h.server_sockets,
        listeners: h.listeners,
        stale: h.stale,
        connected: h.connected,
        source: h.source.parse().unwrap_or_default(),
        interval_ms: h.interval_ms,
        peer: h.peer.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::SourceKind;

    #[test]
    fn hosts_round_trip() {
        let h = HostView {
            name: "db".into(),
            addresses: vec!["198.18.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
            last_report_ms: Some(5),
            sockets: 3,
            client_sockets: 1,
            server_sockets: 2,
            listeners: 1,
            stale: true,
            connected: true,
            source: SourceKind::ProcNet,
            interval_ms: 1000,
            peer: "198.18.0.1:5555".into(),
        };
        assert_eq!(host_from_wire(&host_to_wire(&h)), h);
    }
}
