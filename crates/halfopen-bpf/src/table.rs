//! [`SocketTable`]: a socket table kept up to date from transitions, seeded from one sock_diag
//! dump. Pure: the caller feeds it dump records and [`SockEvent`]s.
//!
//! Keyed by (netns cookie, socket cookie), never by tuple: a tuple is reused by a new socket a
//! moment after the old one closed, and the first transitions of a socket carry an incomplete
//! tuple (see [`SockEvent::tuple`]). Transitions never report TIME_WAIT minisockets, request
//! sockets (SYN_RECV in a dump) or CLOSE->LISTEN, so a seed must hold only full sockets and
//! listeners; [`SocketTable::follows`] says which dump states those are.
//!
//! Seeding races with transitions: start the BPF programs first, then dump, then apply every
//! transition polled after the dump started. A transition that the dump already reflects is
//! applied again harmlessly: it comes back as [`Applied::Mismatched`] with `had` equal to its
//! new state (a CLOSE of a socket the dump missed is [`Applied::UnknownClosed`]). After the
//! seeding moment (compare [`SockEvent::boot_ns`] with the dump's time), any
//! [`Applied::Mismatched`] means a lost or repeated transition.

use halfopen_core::{SocketRecord, TcpState, Tuple};

use crate::{ConnectOwner, SockEvent};

/// One socket in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub netns_cookie: u64,
    pub cookie: u64,
    /// The last complete tuple seen (local = this socket's end).
    pub tuple: Tuple,
    pub state: TcpState,
    /// The connecting task, when the table saw the socket's connect().
    pub owner: Option<ConnectOwner>,
}

/// What [`SocketTable::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A socket the table did not hold (born after the seed).
    Inserted,
    /// A known socket changed state.
    Updated,
    /// A known socket closed.
    Removed,
    /// A socket the table did not hold closed (born and gone between seed and poll, or
    /// missed by the seed).
    UnknownClosed,
    /// A known socket's transition did not start from the state the table had (`had`): a
    /// transition was lost or repeated, or the seed raced with it. The new state is applied
    /// (removed on CLOSE) anyway; a caller that sees this outside the seeding moment should
    /// take a fresh dump.
    Mismatched { had: TcpState },
}

/// The socket table (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct SocketTable {
    /// FxHash (rustc-hash): the keys are kernel cookies, not adversarial
    /// input, and the table is touched on every transition.
    entries: rustc_hash::FxHashMap<(u64, u64), TableEntry>,
}

fn complete(t: &Tuple) -> bool {
    t.local_port() != 0 && t.remote_port() != 0 && !t.remote_ip().is_unspecified() && !t.local_ip().is_unspecified()
}

impl SocketTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether transitions follow sockets in this dump state: every state but TIME_WAIT
    /// (minisockets), SYN_RECV and NEW_SYN_RECV (request sockets) and CLOSE. A FIN_WAIT2
    /// timewait minisocket (inode 0, timer 3: an orphan whose `tcp_fin_timeout` is at most
    /// 60 s) is not followed either; the caller must leave it out.
    pub fn follows(state: TcpState) -> bool {
        !matches!(
            state,
            TcpState::TimeWait | TcpState::SynRecv | TcpState::NewSynRecv | TcpState::Close
        )
    }

    /// Adds a socket from a sock_diag dump of namespace `netns_cookie`. Records without a
    /// cookie (the /proc fallback) or in a state transitions do not follow are skipped;
    /// returns whether it was added.
    pub fn seed(&mut self, netns_cookie: u64, rec: &SocketRecord) -> bool {
        if rec.cookie == 0 || !Self::follows(rec.state) {
            return false;
        }
        self.entries.insert(
            (netns_cookie, rec.cookie),
            TableEntry {
                netns_cookie,
                cookie: rec.cookie,
                tuple: rec.tuple,
                state: rec.state,
                owner: None,
            },
        );
        true
    }

    /// Applies one transition. A [`SockEvent::port_only`] record changes no state: it completes
    /// the tuple of a socket the table holds in SYN_SENT (a later state means the record is
    /// stale: ignored), and adds a SYN_SENT socket the table missed.
    pub fn apply(&mut self, e: &SockEvent) -> Applied {
        let key = (e.netns_cookie, e.cookie);
        if e.port_only {
            if let Some(entry) = self.entries.get_mut(&key) {
                if entry.state == TcpState::SynSent && complete(&e.tuple) {
                    entry.tuple = e.tuple;
                }
                return Applied::Updated;
            }
        }
        if e.new == TcpState::Close {
            return match self.entries.remove(&key) {
                Some(entry) if entry.state != e.old => Applied::Mismatched { had: entry.state },
                Some(_) => Applied::Removed,
                None => Applied::UnknownClosed,
            };
        }
        match self.entries.get_mut(&key) {
            Some(entry) => {
                let had = entry.state;
                entry.state = e.new;
                if complete(&e.tuple) {
                    entry.tuple = e.tuple;
                }
                if entry.owner.is_none() {
                    entry.owner.clone_from(&e.owner);
                }
                if had == e.old {
                    Applied::Updated
                } else {
                    Applied::Mismatched { had }
                }
            }
            None => {
                self.entries.insert(
                    key,
                    TableEntry {
                        netns_cookie: e.netns_cookie,
                        cookie: e.cookie,
                        tuple: e.tuple,
                        state: e.new,
                        owner: e.owner.clone(),
                    },
                );
                Applied::Inserted
            }
        }
    }

    /// Sets the connecting task of a socket the table holds without one (an owner learnt
    /// before a dump replaced the table). Returns whether it was set.
    pub fn set_owner(&mut self, netns_cookie: u64, cookie: u64, owner: ConnectOwner) -> bool {
        match self.entries.get_mut(&(netns_cookie, cookie)) {
            Some(e) if e.owner.is_none() => {
                e.owner = Some(owner);
                true
            }
            _ => false,
        }
    }

    pub fn get(&self, netns_cookie: u64, cookie: u64) -> Option<&TableEntry> {
        self.entries.get(&(netns_cookie, cookie))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every socket, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &TableEntry> {
        self.entries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Family;
    use halfopen_core::Side;
    use std::time::SystemTime;

    fn ev(cookie: u64, old: TcpState, new: TcpState, local: &str, remote: &str) -> SockEvent {
        SockEvent {
            boot_ns: 0,
            at: SystemTime::UNIX_EPOCH,
            netns_cookie: 1,
            cookie,
            family: Family::V4,
            old,
            new,
            tuple: Tuple::new(local.parse().unwrap(), remote.parse().unwrap()),
            owner: None,
            rescued: false,
            port_only: false,
            cpu: 0,
        }
    }

    #[test]
    fn follows_a_client_from_connect_to_close() {
        use TcpState::*;
        let mut t = SocketTable::new();
        let mut connect = ev(7, Close, SynSent, "198.18.0.2:0", "198.18.0.1:3306");
        connect.owner = Some(ConnectOwner {
            pid: 10,
            tid: 10,
            uid: 0,
            gid: 0,
            comm: "app".into(),
        });
        assert_eq!(t.apply(&connect), Applied::Inserted);
        assert_eq!(t.get(1, 7).unwrap().tuple.local_port(), 0);
        let est = ev(7, SynSent, Established, "198.18.0.2:40000", "198.18.0.1:3306");
        assert_eq!(t.apply(&est), Applied::Updated);
        let e = t.get(1, 7).unwrap();
        assert_eq!(e.state, Established);
        assert_eq!(e.tuple, est.tuple);
        assert_eq!(e.owner.as_ref().unwrap().comm, "app");
        // An incomplete tuple never replaces a complete one.
        assert_eq!(
            t.apply(&ev(7, Established, FinWait1, "0.0.0.0:0", "0.0.0.0:0")),
            Applied::Updated
        );
        assert_eq!(t.get(1, 7).unwrap().tuple, est.tuple);
        assert_eq!(t.get(1, 7).unwrap().state, FinWait1);
        // A transition from another state than the table's says something was lost.
        assert_eq!(
            t.apply(&ev(7, FinWait2, Close, "198.18.0.2:40000", "198.18.0.1:3306")),
            Applied::Mismatched { had: FinWait1 }
        );
        assert!(t.is_empty());
        t.apply(&connect);
        t.apply(&est);
        assert_eq!(
            t.apply(&ev(7, SynSent, Established, "198.18.0.2:40000", "198.18.0.1:3306")),
            Applied::Mismatched { had: Established },
            "a repeated transition"
        );
        assert_eq!(
            t.apply(&ev(7, Established, Close, "198.18.0.2:40000", "198.18.0.1:3306")),
            Applied::Removed
        );
        assert_eq!(
            t.apply(&ev(7, FinWait2, Close, "198.18.0.2:40000", "198.18.0.1:3306")),
            Applied::UnknownClosed
        );
    }

    #[test]
    fn a_port_record_completes_a_connecting_socket_and_changes_no_state() {
        use TcpState::*;
        let mut t = SocketTable::new();
        t.apply(&ev(7, Close, SynSent, "198.18.0.2:0", "198.18.0.1:3306"));
        let mut port = ev(7, SynSent, SynSent, "198.18.0.2:40000", "198.18.0.1:3306");
        port.port_only = true;
        assert_eq!(t.apply(&port), Applied::Updated);
        assert_eq!(t.get(1, 7).unwrap().tuple, port.tuple);
        // Stale (the socket is established by now): ignored, the state stays.
        t.apply(&ev(7, SynSent, Established, "198.18.0.2:40000", "198.18.0.1:3306"));
        assert_eq!(t.apply(&port), Applied::Updated);
        assert_eq!(t.get(1, 7).unwrap().state, Established);
        // A connecting socket the table missed is added.
        port.cookie = 8;
        assert_eq!(t.apply(&port), Applied::Inserted);
        assert_eq!(t.get(1, 8).unwrap().state, SynSent);
    }

    #[test]
    fn seeds_only_what_transitions_follow_and_keys_by_namespace() {
        use TcpState::*;
        let rec = |cookie, state| SocketRecord {
            tuple: Tuple::new("198.18.0.1:3306".parse().unwrap(), "198.18.0.2:40000".parse().unwrap()),
            state,
            side: Side::Server,
            cookie,
            inode: 1,
            uid: 0,
            keepalive: false,
            info: None,
        };
        let mut t = SocketTable::new();
        assert!(t.seed(1, &rec(5, Established)));
        assert!(t.seed(1, &rec(6, Listen)));
        assert!(!t.seed(1, &rec(8, TimeWait)));
        assert!(!t.seed(1, &rec(9, SynRecv)));
        assert!(!t.seed(1, &rec(0, Established)));
        assert_eq!(t.len(), 2);
        // Same cookie in another namespace is another socket.
        let mut other = ev(5, Established, CloseWait, "198.18.0.1:3306", "198.18.0.2:40000");
        other.netns_cookie = 2;
        assert_eq!(t.apply(&other), Applied::Inserted);
        assert_eq!(t.get(1, 5).unwrap().state, Established);
        assert_eq!(t.iter().count(), 3);
    }
}
