//! halfopen-lab: throwaway labs of Linux network namespaces, and the lab processes that reproduce
//! the half-open incident in them.
//!
//! A [`Lab`] is one "switch" namespace holding a bridge plus one namespace per host, each with a
//! veth `eth0` (an address in 198.18.0.0/15, /24) whose peer sits on the bridge. Names are
//! `ho-<tag>-<pid>-<seq>-<host>`; leftovers of a crashed run with the same tag are deleted when
//! the next lab with that tag is created. Dropping a lab (also during a panic) kills everything
//! it started or that still runs inside it and deletes the namespaces. The root namespace's
//! network is never touched.
//!
//! The lab processes ([`LabCommand`]: `greet-server`, `burst`, `churn`) run inside the lab via
//! [`Lab::spawn`], as `halfopen lab <cmd>` or this crate's `halfopen-lab <cmd>` binary.
//!
//! ```no_run
//! # use halfopen_lab::*;
//! # fn main() -> Result<(), LabError> {
//! let mut lab = Lab::new("demo")?;
//! lab.add_host("server", "198.18.0.1".parse().unwrap())?;
//! lab.add_host("client", "198.18.0.2".parse().unwrap())?;
//! lab.sysctl("server", "net.ipv4.tcp_syncookies", "1")?;
//! let bin = std::path::Path::new("/usr/local/bin/halfopen");
//! let server = lab.spawn("server", bin, &["lab", "greet-server", "--listen", "0.0.0.0:3306",
//!                                          "--backlog", "4", "--accept-delay", "4s"])?;
//! server.wait_for_prefix("listening", std::time::Duration::from_secs(5))?;
//! lab.spawn("client", bin, &["lab", "burst", "--target", "198.18.0.1:3306", "--count", "200"])?;
//! // ... lab.ss_established("client")? vs lab.ss_established("server")? ...
//! lab.teardown()
//! # }
//! ```

mod child;
pub mod duration;
mod error;
mod exec;
pub mod fleet;
mod lab;
pub mod naming;
mod privilege;
mod procs;
pub mod ss;
mod tmpfs;

pub use child::LabChild;
pub use error::LabError;
pub use lab::{is_root, list_namespaces, remove_leftovers, Host, Lab};
pub use nix::sys::signal::Signal;
pub use privilege::{require_root_or_skip, ExeForOthers};
pub use procs::{run, BurstArgs, BurstReport, ChurnArgs, ChurnReport, GreetServerArgs, LabCommand, ServerCounters};
pub use ss::SsConn;
pub use tmpfs::Tmpfs;
