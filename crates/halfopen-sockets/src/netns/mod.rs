//! Every network namespace of the machine: finding them ([`discover`]),
//! identifying them safely ([`NetnsId`]: nsfs inode + netns cookie),
//! choosing them ([`NetnsSpec`], the `--netns` flag), holding them
//! ([`NetnsHandle`]) and running work inside one on a dedicated thread
//! ([`spawn_in`], [`run_in`]). Naming them after their containers is
//! [`crate::containers`]' job.
//!
//! A collector covering every namespace:
//! ```no_run
//! use halfopen_sockets::netns::{discover, spawn_in, DiscoverOptions, NetnsHandle};
//! # fn main() -> Result<(), halfopen_sockets::netns::NetnsError> {
//! let opts = DiscoverOptions::default();
//! let found = discover(&opts)?;
//! for p in &found.problems {
//!     eprintln!("netns discovery: {p}");
//! }
//! for ns in &found.namespaces {
//!     let handle = NetnsHandle::open_discovered(ns, &opts)?;
//!     let worker = spawn_in(&handle, "collect-ns", || {
//!         // a Scanner opened here reads this namespace's sockets
//!         halfopen_sockets::Scanner::open().map(|_| ())
//!     })?;
//!     println!("{} ok: {:?}", worker.id(), worker.join());
//! }
//! # Ok(()) }
//! ```
//! Keep each handle while [`Discovery::still_used`] says so; drop it (and
//! stop its worker) when a later discovery no longer lists its namespace.
//!
//! Privileges (details in [`caps`]): entering needs CAP_SYS_ADMIN (in the
//! caller's and the target's owning user namespace); opening another
//! process's `/proc/PID/ns/net` needs ptrace read access (CAP_SYS_PTRACE,
//! or the same uid and no capability the target has that the caller
//! lacks); `/run/netns/NAME` needs nothing. Refusals are typed errors that
//! name the missing capability ([`NetnsError::missing_capability`]).
pub mod caps;
mod discover;
mod enter;
mod error;
mod id;
mod spec;

pub use caps::Capability;
pub use discover::{discover, DiscoverOptions, Discovery, DiscoveryProblem, DiscoveryStats, Netns, ProblemKind};
pub use enter::{run_in, spawn_in, spawn_in_with, NetnsHandle, NetnsThread};
pub use error::{NetnsError, NotNetns};
pub use id::{current_cookie, NetnsCookie, NetnsId, NsInode, SO_NETNS_COOKIE};
pub use spec::{NetnsSelector, NetnsSpec, Selection, SpecError};
