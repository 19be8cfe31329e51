//! halfopen-bpf: the eBPF source of halfopen. Two things polling cannot give:
//!
//! 1. **Changes, not tables.** Every TCP state transition (tracepoint
//!    `sock:inet_sock_set_state`) as a [`SockEvent`], keyed by socket cookie and network
//!    namespace cookie, with the connecting process (pid, comm, uid) taken inside connect().
//!    The cost follows the rate of connection changes, not the number of sockets: 200,000
//!    idle connections cost nothing. [`SocketTable`] keeps a table from one sock_diag dump
//!    plus the transitions.
//! 2. **The server's kernel as a witness.** Each completed handshake that the server dropped
//!    because the listener's accept queue was full, as a [`WitnessedDrop`]: the 4-tuple, the
//!    SYN-cookie or normal path, the queue length and backlog at that moment.
//!
//! ```no_run
//! # fn main() -> Result<(), halfopen_bpf::BpfError> {
//! use halfopen_bpf::{Bpf, LoadOptions};
//! let mut bpf = Bpf::load(&LoadOptions::default())?;
//! let (mut socks, mut drops) = (Vec::new(), Vec::new());
//! let mut seen = bpf.lost()?;
//! loop {
//!     bpf.poll(std::time::Duration::from_millis(10), &mut socks, &mut drops)?;
//!     for d in drops.drain(..) {
//!         println!("{d}"); // 198.18.0.2:40000 -> 198.18.0.1:3306 dropped: accept queue full (5 of 4), SYN-cookie path
//!     }
//!     socks.clear(); // ... apply to a SocketTable
//!     let now = bpf.lost()?; // (about once a second in real use)
//!     if now.since(&seen).any_lost() {
//!         // take a full sock_diag dump: the event-built table is no longer exact
//!     }
//!     seen = now;
//! #   break;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Building
//! The BPF programs (`src/bpf/halfopen.bpf.c`, with a small hand-written CO-RE header
//! `src/bpf/kernel.h` instead of a generated vmlinux.h) are compiled by clang at build time
//! through libbpf-cargo's SkeletonBuilder, only with the cargo feature `bpf`; libbpf is
//! vendored and linked statically (libelf and zlib come from the system). Without the feature
//! the crate builds anywhere and [`Bpf::load`] returns [`BpfError::NotCompiledIn`].
//!
//! Running needs kernel BTF (/sys/kernel/btf/vmlinux), CAP_BPF + CAP_PERFMON (or
//! CAP_SYS_ADMIN), and a kernel with ring buffers and `bpf_ktime_get_boot_ns` (5.8+),
//! tp_btf, `bpf_get_socket_cookie` for tracing programs (5.12+) and `bpf_get_func_ret` for
//! the fexit witness (5.17+; otherwise [`WitnessMode::Auto`] falls back to kretprobes, then
//! to the drop-reason tracepoint). Checked on 6.18, where fentry/fexit programs are refused
//! with EPERM before verification (even a trivial fentry on `tcp_v4_rcv`) and the kernel has
//! no kprobes (`CONFIG_KPROBES` is not set): there the witness runs on `skb:kfree_skb`
//! ([`WitnessHook::DropReason`]), the only hook tested on the real kernel.
//!
//! # Design
//! **No wakeup per event.** Records are submitted with `BPF_RB_NO_WAKEUP`, except the one
//! whose submit makes the pending bytes cross [`LoadOptions::wake_bytes`] (256 KiB); the
//! reader polls on a ~10 ms timer and drains everything. A wakeup per event cost ~15% of a core in the reader plus ~35% extra
//! kernel time in the traced processes at 10,000 connections/s (team notes).
//!
//! **The recursion guard and its rescue.** The kernel runs one BPF program at most once at a
//! time per CPU (`prog->active` in `__bpf_trace_run`, kernel/trace/bpf_trace.c): when a
//! softirq interrupts `on_state` on a CPU and makes a transition there (TCP state changes
//! happen in process context and in softirq), the nested run is skipped and only counted in
//! the program's `recursion_misses`. Plain tracepoints lose a few transitions per million
//! this way. The rescue is a second tp_btf program, `on_state_rescue`, attached to the same
//! tracepoint *after* `on_state` (a tracepoint calls its probes in registration order,
//! kernel/tracepoint.c). Each program has its own guard, and for one firing the two run one
//! after the other, so their guarded windows never nest into each other's firing: a
//! transition nested inside `on_state`'s window reaches the rescue, and one nested inside the
//! rescue's window reaches `on_state`. Duplicates are avoided by a small per-CPU table: for
//! every transition it handles, `on_state` records the key (socket cookie, old state, new
//! state, time); the rescue emits a transition only when its key is absent (on_state was
//! skipped) and otherwise removes the key. Keys older than 20 ms are free slots (16 per
//! CPU). A live key pushed out of a full table makes the rescue emit that transition a second
//! time; a stale key (left when the rescue itself was skipped) could hide a later skipped
//! transition of the same socket with the same old and new state within 20 ms. Measured
//! residuals are in the crate README.
//! [`LossStats::transitions_lost`] counts the misses the rescue did not cover
//! (`recursion_misses(on_state) - rescued`) plus ring-full drops.
//!
//! **The witness.** `tcp_v4_syn_recv_sock` / `tcp_v6_syn_recv_sock` (called through
//! `icsk_af_ops->syn_recv_sock`, so never inlined) return NULL when `sk_acceptq_is_full`
//! (`sk_ack_backlog > sk_max_ack_backlog`); fexit sees the listener, the request socket (the
//! 4-tuple: `ir_loc_addr`, `ir_num`, `ir_rmt_addr`, `ir_rmt_port`) and the return value
//! (`bpf_get_func_ret`: the function has 7 parameters on 6.18, 6 on older kernels, so the
//! return value is not at a fixed argument position). A per-CPU depth counter raised on entry
//! to `cookie_v4_check`/`cookie_v6_check` and lowered on exit tells the SYN-cookie path from
//! the normal one (`tcp_check_req`); on 6.7+ `request_sock.syncookie` says the same and is
//! reported too. An IPv4 client of a dual-stack listener goes through
//! `tcp_v6_syn_recv_sock`, which calls `tcp_v4_syn_recv_sock`: only the inner call is
//! reported. All four functions are in the BTF and kallsyms of 6.18 (`tcp_v6_syn_recv_sock`
//! is static); on 6.18 `tcp_v{4,6}_syn_recv_sock` take 7 parameters.
//!
//! Where neither fexit nor kprobes can be used, the witness reads the drop reason
//! (tracepoint `skb:kfree_skb` as tp_btf): the final ACK freed with
//! `SKB_DROP_REASON_NO_SOCKET` (the cookie check gave up, 6.9+) or
//! `SKB_DROP_REASON_TCP_LISTEN_OVERFLOW` (`tcp_check_req`, 6.15+) with a listener as `rx_sk`
//! (6.11+) whose queue is full; the 4-tuple comes from the packet's IP and TCP headers; the
//! reason gives the path. Observed on 6.18: cookie drops arrive as NO_SOCKET with the listener
//! at 5 of 4, normal-path drops as TCP_LISTEN_OVERFLOW. A client that keeps sending segments
//! carrying its cookie (a retransmitted SYN-ACK's ACK, its FIN when it closes) is witnessed
//! again each time: dedupe by tuple.
//!
//! **Time.** The BPF side stamps `bpf_ktime_get_boot_ns` (CLOCK_BOOTTIME); each poll pairs
//! CLOCK_BOOTTIME with CLOCK_REALTIME once ([`ClockAnchor`]) and converts every event of
//! that poll with it.

mod caps;
mod error;
mod event;
#[cfg(feature = "bpf")]
mod loader;
mod options;
pub mod raw;
mod stats;
#[cfg(not(feature = "bpf"))]
mod stub;
pub mod table;

#[cfg(feature = "bpf")]
#[allow(
    clippy::all,
    clippy::pedantic,
    unsafe_code,
    unused_imports,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    unsafe_op_in_unsafe_fn
)]
mod skel {
    //! The libbpf skeleton generated at build time from src/bpf/halfopen.bpf.c.
    include!(concat!(env!("OUT_DIR"), "/halfopen.skel.rs"));
}

pub use caps::{
    insufficient_here as insufficient_capabilities, missing_here as missing_capabilities,
    sufficient as capabilities_sufficient, CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN,
};
pub use error::BpfError;
pub use event::{
    decode, ClockAnchor, ConnectOwner, DecodeError, DropPath, Event, Family, SockEvent, WitnessHook, WitnessedDrop,
};
#[cfg(feature = "bpf")]
pub use loader::Bpf;
pub use options::{LoadOptions, WitnessMode, MAX_NETNS_FILTER};
pub use stats::{Activity, LossStats, PollStats};
#[cfg(not(feature = "bpf"))]
pub use stub::Bpf;
pub use table::{Applied, SocketTable, TableEntry};

/// Whether this build has the BPF programs (the `bpf` feature).
pub const COMPILED_IN: bool = cfg!(feature = "bpf");
