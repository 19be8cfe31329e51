//! Hosts as `halfopen hosts` lists them, and the coverage of the answers.
use super::socket::{addrs_from_wire, addrs_to_wire};
use crate::v1;
use halfopen_core::{
    ip_from_wire, parse_endpoint, wire_bytes, BlindSpot, Coverage, HostView, Instance, SharedAddress, StoreHealth,
    Unmonitored,
};

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
        machine_id: h.instance.machine_id.clone(),
        boot_id: h.instance.boot_id.clone(),
        netns: h.instance.netns,
        collector_pid: h.instance.pid,
        gone: h.gone,
        disconnected_since_unix_ms: h.disconnected_since_ms.unwrap_or(0),
        conflict: h.conflict.clone().unwrap_or_default(),
        shared_addresses: addrs_to_wire(&h.shared_addresses),
        blind_spots: h.blind_spots.clone(),
        nat: h.nat.clone(),
        parent: h.parent.clone(),
        netns_name: h.netns_name.clone(),
        container: h.container.clone(),
        pod: h.pod.clone(),
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
        instance: Instance {
            machine_id: h.machine_id.clone(),
            boot_id: h.boot_id.clone(),
            netns: h.netns,
            pid: h.collector_pid,
        },
        gone: h.gone,
        disconnected_since_ms: (h.disconnected_since_unix_ms != 0).then_some(h.disconnected_since_unix_ms),
        conflict: (!h.conflict.is_empty()).then(|| h.conflict.clone()),
        shared_addresses: addrs_from_wire(&h.shared_addresses),
        blind_spots: h.blind_spots.clone(),
        nat: h.nat.clone(),
        parent: h.parent.clone(),
        netns_name: h.netns_name.clone(),
        container: h.container.clone(),
        pod: h.pod.clone(),
    }
}

pub fn coverage_to_wire(c: &Coverage) -> v1::Coverage {
    v1::Coverage {
        hosts: c.hosts,
        fresh: c.fresh,
        stale: c.stale.clone(),
        disconnected: c.disconnected.clone(),
        gone: c.gone.clone(),
        conflicts: c.conflicts.clone(),
        shared_addresses: c
            .shared_addresses
            .iter()
            .map(|s| v1::SharedAddress {
                addr: wire_bytes(s.addr),
                hosts: s.hosts.clone(),
            })
            .collect(),
        unmonitored_connections: c.unmonitored.connections,
        unmonitored_servers: c.unmonitored.servers,
        unmonitored_top: c
            .unmonitored
            .top
            .iter()
            .map(|(s, n)| v1::UnmonitoredServer {
                server: s.to_string(),
                connections: *n,
            })
            .collect(),
        blind_spots: c
            .blind_spots
            .iter()
            .map(|b| v1::BlindSpot {
                host: b.host.clone(),
                what: b.what.clone(),
            })
            .collect(),
        store: c.store.as_ref().map(store_to_wire),
    }
}

pub fn store_to_wire(s: &StoreHealth) -> v1::StoreStatus {
    v1::StoreStatus {
        failing_since_unix_ms: s.failing_since_ms.unwrap_or(0),
        error: s.error.clone().unwrap_or_default(),
        pending: s.pending,
        capacity: s.capacity,
        refused: s.refused,
        written: s.written,
        dropped: s.dropped,
    }
}

pub fn store_from_wire(s: &v1::StoreStatus) -> StoreHealth {
    StoreHealth {
        failing_since_ms: (s.failing_since_unix_ms != 0).then_some(s.failing_since_unix_ms),
        error: (!s.error.is_empty()).then(|| s.error.clone()),
        pending: s.pending,
        capacity: s.capacity,
        refused: s.refused,
        written: s.written,
        dropped: s.dropped,
    }
}

/// Coverage; entries whose addresses do not decode are dropped.
pub fn coverage_from_wire(c: &v1::Coverage) -> Coverage {
    Coverage {
        hosts: c.hosts,
        fresh: c.fresh,
        stale: c.stale.clone(),
        disconnected: c.disconnected.clone(),
        gone: c.gone.clone(),
        conflicts: c.conflicts.clone(),
        shared_addresses: c
            .shared_addresses
            .iter()
            .filter_map(|s| {
                Some(SharedAddress {
                    addr: ip_from_wire(&s.addr)?,
                    hosts: s.hosts.clone(),
                })
            })
            .collect(),
        unmonitored: Unmonitored {
            connections: c.unmonitored_connections,
            servers: c.unmonitored_servers,
            top: c
                .unmonitored_top
                .iter()
                .filter_map(|u| Some((parse_endpoint(&u.server)?, u.connections)))
                .collect(),
        },
        blind_spots: c
            .blind_spots
            .iter()
            .map(|b| BlindSpot {
                host: b.host.clone(),
                what: b.what.clone(),
            })
            .collect(),
        store: c.store.as_ref().map(store_from_wire),
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
            instance: Instance {
                machine_id: "m".into(),
                boot_id: "b".into(),
                netns: 4026531840,
                pid: 9,
            },
            gone: false,
            disconnected_since_ms: Some(7),
            conflict: Some("a second collector".into()),
            shared_addresses: vec!["198.18.0.1".parse().unwrap()],
            blind_spots: vec!["owners".into()],
            nat: "unknown: EPERM".into(),
            parent: Some("node-1".into()),
            netns_name: Some("cni-0a1b".into()),
            container: None,
            pod: Some("shop/web-7d9f".into()),
        };
        assert_eq!(host_from_wire(&host_to_wire(&h)), h);
        // The machine's own namespace: nothing set, and nothing read back.
        let own = HostView {
            parent: None,
            netns_name: None,
            pod: None,
            ..h
        };
        let w = host_to_wire(&own);
        assert_eq!((w.parent.as_deref(), w.pod.as_deref()), (None, None));
        assert_eq!(host_from_wire(&w), own);
    }

    #[test]
    fn coverage_round_trips() {
        let c = Coverage {
            hosts: 3,
            fresh: 1,
            stale: vec!["a".into()],
            disconnected: vec![],
            gone: vec!["b".into()],
            conflicts: vec!["c".into()],
            shared_addresses: vec![SharedAddress {
                addr: "198.18.0.1".parse().unwrap(),
                hosts: vec!["x".into(), "y".into()],
            }],
            unmonitored: Unmonitored {
                connections: 312,
                servers: 3,
                top: vec![("198.18.9.9:5432".parse().unwrap(), 300)],
            },
            blind_spots: vec![BlindSpot {
                host: "app".into(),
                what: "owners unknown".into(),
            }],
            store: Some(StoreHealth {
                failing_since_ms: Some(1_700_000_000_000),
                error: Some("database /x.db: database or disk is full".into()),
                pending: 372,
                capacity: 200_000,
                refused: 3,
                written: 14,
                dropped: 1,
            }),
        };
        assert_eq!(coverage_from_wire(&coverage_to_wire(&c)), c);
        let healthy = Coverage {
            store: Some(StoreHealth::default()),
            ..Default::default()
        };
        assert_eq!(coverage_from_wire(&coverage_to_wire(&healthy)), healthy);
        assert_eq!(coverage_from_wire(&coverage_to_wire(&Coverage::default())).store, None);
    }
}
