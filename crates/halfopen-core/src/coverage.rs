//! [`Coverage`]: what an answer covers and what it does not. An all-clear
//! is only worth what halfopen could see: hosts that are stale, gone or in
//! conflict, addresses two hosts claim, connections to servers no collector
//! covers, and what a collector could not read are all listed, never hidden.
use std::net::{IpAddr, SocketAddr};

/// An address several live hosts claim: nothing to or from it is judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedAddress {
    pub addr: IpAddr,
    pub hosts: Vec<String>,
}

/// Client connections whose server no collector covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unmonitored {
    /// ESTABLISHED client sockets on monitored hosts to unmonitored servers.
    pub connections: u64,
    /// Distinct server endpoints among them.
    pub servers: u64,
    /// The busiest of those servers, with their connection counts.
    pub top: Vec<(SocketAddr, u64)>,
}

/// Something one collector cannot see.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlindSpot {
    pub host: String,
    pub what: String,
}

/// What the reconciler's answers cover now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Hosts known, and of them those fresh (judgeable).
    pub hosts: u32,
    pub fresh: u32,
    /// Connected but not reporting (or waiting for a full table).
    pub stale: Vec<String>,
    /// Disconnected, not yet gone.
    pub disconnected: Vec<String>,
    /// Disconnected for longer than `gone_after`.
    pub gone: Vec<String>,
    /// Host ids that a second live collector tried to claim (refused).
    pub conflicts: Vec<String>,
    pub shared_addresses: Vec<SharedAddress>,
    pub unmonitored: Unmonitored,
    pub blind_spots: Vec<BlindSpot>,
    /// Whether what the answer shows is being recorded: filled by the
    /// reconciler from its database writer (never by the engine); None
    /// without a database.
    pub store: Option<crate::StoreHealth>,
}

impl Coverage {
    /// Whether the answer covers everything: every host fresh, nothing
    /// shared, unmonitored or unseen.
    pub fn complete(&self) -> bool {
        self.fresh == self.hosts
            && self.gone.is_empty()
            && self.conflicts.is_empty()
            && self.shared_addresses.is_empty()
            && self.unmonitored.connections == 0
            && self.blind_spots.is_empty()
    }
}
