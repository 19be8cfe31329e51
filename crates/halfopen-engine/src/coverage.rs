//! What the engine's answers cover now ([`Coverage`]): hosts that are
//! stale, disconnected, gone or in conflict; addresses several live hosts
//! claim; client connections to servers no collector covers; and what
//! collectors said they cannot see. Computed on demand (a query), from the
//! tables: its cost is one pass over the client sockets of fresh hosts.
use crate::{Clock, Engine};
use halfopen_core::{is_matchable_ip, BlindSpot, Coverage, SharedAddress, Side, TcpState, Unmonitored};
use std::collections::HashMap;
use std::net::SocketAddr;

/// How many of the busiest unmonitored servers are named.
const TOP_UNMONITORED: usize = 5;

impl Engine {
    /// See the module documentation.
    pub fn coverage(&self, now: Clock) -> Coverage {
        let mut c = Coverage::default();
        let mut unmonitored: HashMap<SocketAddr, u64> = HashMap::new();
        for h in 0..self.hosts.len() {
            let host = &self.hosts[h];
            if host.vacant {
                continue;
            }
            c.hosts += 1;
            if self.hosts.is_gone(h, now, &self.cfg) {
                c.gone.push(host.name.clone());
            } else if !host.connected {
                c.disconnected.push(host.name.clone());
            } else if self.hosts.is_stale(h, now, &self.cfg) {
                c.stale.push(host.name.clone());
            } else {
                c.fresh += 1;
                for (t, e) in host.table.iter() {
                    if e.side != Side::Client || e.state != TcpState::Established {
                        continue;
                    }
                    let ip = t.remote_ip();
                    if !is_matchable_ip(ip) || self.hosts.owns_or_shared(ip) || self.other_end(h, *t).is_some() {
                        continue;
                    }
                    *unmonitored.entry(t.remote()).or_insert(0) += 1;
                }
            }
            if self.conflict_of(h, now).is_some() {
                c.conflicts.push(host.name.clone());
            }
            if !self.hosts.is_gone(h, now, &self.cfg) {
                for what in host.blind_spots_now() {
                    c.blind_spots.push(BlindSpot {
                        host: host.name.clone(),
                        what,
                    });
                }
            }
        }
        c.shared_addresses = self
            .hosts
            .ambiguous()
            .into_iter()
            .map(|(addr, hs)| SharedAddress {
                addr,
                hosts: hs.iter().map(|h| self.hosts[*h].name.clone()).collect(),
            })
            .collect();
        let mut top: Vec<(SocketAddr, u64)> = unmonitored.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        c.unmonitored = Unmonitored {
            connections: top.iter().map(|(_, n)| n).sum(),
            servers: top.len() as u64,
            top: top.into_iter().take(TOP_UNMONITORED).collect(),
        };
        for v in [&mut c.stale, &mut c.disconnected, &mut c.gone, &mut c.conflicts] {
            v.sort();
        }
        c
    }
}
