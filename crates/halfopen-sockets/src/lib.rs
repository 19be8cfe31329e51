//! halfopen-sockets: everything that reads the kernel.
//!
//! - [`Scanner`] (in `scanner`): the TCP socket table and the listeners, from
//!   netlink sock_diag, or from /proc/net/tcp{,6} where netlink is refused.
//! - [`diag`]: sock_diag requests, a zero-allocation parser of the answers, and
//!   the netlink socket that carries them.
//! - [`filter`]: the inet_diag bytecode port filter of [`Scanner::scan_ports`]
//!   and its user-space twin.
//! - [`procnet`]: the /proc/net/tcp{,6} line parser and reader (fallback only).
//! - [`owners`]: which process holds a socket inode, through `/proc/<pid>/fd`.
//! - [`ifaddrs`]: this namespace's interface addresses.
//! - [`netns`]: every network namespace on the machine, their identity
//!   (netns cookie and nsfs inode), and threads that enter one.
//! - [`containers`]: a readable name for a namespace (container, pod).
//! - [`conntrack`]: the NAT'd TCP entries of the connection-tracking table,
//!   as a dump and as an event stream (netlink conntrack).
//! - [`error`]: the error type, [`ScanError`].
//!
//! What comes out is `halfopen-core`'s types ([`SocketRecord`],
//! [`Listener`], [`Process`]), canonical (IPv4-mapped IPv6 folded) and
//! independent of where they were read. Every read is of the network
//! namespace of the thread that created the [`Scanner`].
//!
//! [`SocketRecord`]: halfopen_core::SocketRecord
//! [`Listener`]: halfopen_core::Listener
//! [`Process`]: halfopen_core::Process
pub mod conntrack;
pub mod containers;
pub mod diag;
pub mod error;
pub mod filter;
pub mod ifaddrs;
pub mod netns;
pub mod owners;
pub mod procnet;
mod scanner;
mod sys;

pub use error::ScanError;
pub use ifaddrs::local_addresses;
pub use owners::{Owners, ResolveStats};
pub use scanner::{ScanStats, Scanner};

/// An address family of TCP sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Both, in the order dumps are made.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// AF_INET / AF_INET6.
    pub fn af(self) -> u8 {
        match self {
            Family::V4 => libc::AF_INET as u8,
            Family::V6 => libc::AF_INET6 as u8,
        }
    }

    pub fn from_af(af: u8) -> Option<Family> {
        match i32::from(af) {
            libc::AF_INET => Some(Family::V4),
            libc::AF_INET6 => Some(Family::V6),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "AF_INET",
            Family::V6 => "AF_INET6",
        }
    }
}
