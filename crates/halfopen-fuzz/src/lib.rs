//! halfopen-fuzz: one fuzz target per decoder or parser that takes bytes
//! from outside, as a plain function `fn(&[u8])` that drives the real code
//! with the input and checks cheap invariants. A target panics only on a
//! bug: a panic in the code under test, a hang the fuzzer times out, or a
//! broken invariant (an `assert!` here).
//!
//! The same functions are driven by two harnesses:
//! - `fuzz/afl` (a separate cargo project, one `afl::fuzz!` binary per
//!   target; `fuzz/run.sh` runs them all for a bounded time);
//! - `tests/corpus.rs`, which replays every file of `fuzz/corpus/<target>/`
//!   through its target in `cargo test`, so a crash once found stays fixed.
//!
//! [`TARGETS`] is the one list of targets: the corpus test fails when a
//! target has no corpus, a corpus has no target, or `fuzz/afl` lacks a
//! binary for a target.
//!
//! Modules, by where the bytes come from:
//! - [`session`]: a hostile collector's whole gRPC session, into a real engine.
//! - [`wire`]: single protobuf messages (collector → reconciler,
//!   reconciler → collector, reconciler → CLI).
//! - [`netlink`]: sock_diag and ctnetlink replies.
//! - [`files`]: /proc files and the container runtimes' files.
//! - [`args`]: values typed by operators or carried by clients (`--netns`,
//!   page tokens, explain targets, durations).
//! - [`seeds`]: the realistic inputs the corpora start from.
pub mod args;
pub mod files;
pub mod netlink;
pub mod seeds;
pub mod session;
pub mod wire;

pub use args::{duration_arg, explain_target, netns_spec, page_token, time_arg};
pub use files::{cgroup, docker_config, pod_log_dir, proc_maps, proc_net_counters, proc_net_tcp};
pub use netlink::{conntrack, sock_diag};
pub use session::collector_session;
pub use wire::{collector_message, query_response, reconciler_message};

/// A fuzz target: takes any bytes; panics only on a bug.
pub type Target = fn(&[u8]);

/// Every target, by name. The name is also the corpus directory
/// (`fuzz/corpus/<name>/`) and the `fuzz/afl` binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("collector_session", collector_session),
    ("collector_message", collector_message),
    ("reconciler_message", reconciler_message),
    ("query_response", query_response),
    ("sock_diag", sock_diag),
    ("conntrack", conntrack),
    ("proc_net_tcp", proc_net_tcp),
    ("proc_net_counters", proc_net_counters),
    ("proc_maps", proc_maps),
    ("cgroup", cgroup),
    ("pod_log_dir", pod_log_dir),
    ("docker_config", docker_config),
    ("netns_spec", netns_spec),
    ("page_token", page_token),
    ("explain_target", explain_target),
    ("duration_arg", duration_arg),
    ("time_arg", time_arg),
];

/// The target of this name, if there is one.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
