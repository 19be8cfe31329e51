//! [`Bpf`] (feature `bpf`): opens the compiled BPF object through its libbpf skeleton, sizes
//! its rings, sets its read-only configuration, loads it (CO-RE relocation against
//! /sys/kernel/btf/vmlinux, then the verifier), attaches the programs in the order the rescue
//! design needs, and reads the rings, counters and recursion-miss statistics.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject, PrintLevel, RingBuffer, RingBufferBuilder};

use crate::event::{decode, ClockAnchor, DecodeError, Event, SockEvent, WitnessHook, WitnessedDrop};
use crate::raw::counter;
use crate::skel::{HalfopenSkel, HalfopenSkelBuilder, OpenHalfopenSkel};
use crate::{caps, Activity, BpfError, LoadOptions, LossStats, PollStats, WitnessMode};

/// Where the kernel exposes its own BTF; tp_btf, fentry/fexit and CO-RE all need it.
const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

// ---- libbpf's messages: kept (the last lines) for the errors, never printed ----

const LOG_LINES: usize = 200;
static LIBBPF_LOG: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
static PRINT_INIT: std::sync::Once = std::sync::Once::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn libbpf_print(_level: PrintLevel, msg: String) {
    let mut log = lock(&LIBBPF_LOG);
    for line in msg.lines() {
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line.to_string());
    }
}

fn take_log() -> String {
    let mut log = lock(&LIBBPF_LOG);
    let s: Vec<String> = log.drain(..).collect();
    s.join("\n")
}

fn to_io(e: &libbpf_rs::Error) -> io::Error {
    use libbpf_rs::ErrorKind as K;
    let kind = match e.kind() {
        K::NotFound => io::ErrorKind::NotFound,
        K::PermissionDenied => io::ErrorKind::PermissionDenied,
        K::AlreadyExists => io::ErrorKind::AlreadyExists,
        K::InvalidInput => io::ErrorKind::InvalidInput,
        K::InvalidData => io::ErrorKind::InvalidData,
        K::Unsupported => io::ErrorKind::Unsupported,
        K::WouldBlock => io::ErrorKind::WouldBlock,
        K::Interrupted => io::ErrorKind::Interrupted,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{e:#}"))
}

/// EPERM/EACCES while this process lacks CAP_SYS_ADMIN and one of CAP_BPF/CAP_PERFMON: a
/// privilege problem. With enough capabilities, EACCES is the verifier rejecting a program and
/// EPERM a kernel that refuses the program type (an LSM, lockdown, or as on the 6.18 here,
/// fentry/fexit): a load error, which lets [`WitnessMode::Auto`] try the next hook.
fn classify(what: String, e: &libbpf_rs::Error) -> BpfError {
    let source = to_io(e);
    let log = take_log();
    if source.kind() == io::ErrorKind::PermissionDenied {
        if let Some(missing) = caps::insufficient_here() {
            return BpfError::PermissionDenied { what, missing, source };
        }
    }
    BpfError::Load { what, source, log }
}

// ---- the loaded object ----

/// The storage libbpf's skeleton lives in. The skeleton borrows it for `'static`; [`Bpf`]'s
/// Drop drops the skeleton first, then frees it.
struct Storage(*mut MaybeUninit<OpenObject>);

// SAFETY: the pointer is owned (a leaked Box) and only touched by Bpf's Drop.
unsafe impl Send for Storage {}

/// What the ring-buffer callbacks decode into, drained by each poll.
#[derive(Default)]
struct Pending {
    anchor: Option<ClockAnchor>,
    socks: Vec<SockEvent>,
    drops: Vec<WitnessedDrop>,
    undecodable: usize,
    first_error: Option<DecodeError>,
}

impl Pending {
    fn push(&mut self, data: &[u8]) {
        let anchor = match self.anchor {
            Some(a) => a,
            None => {
                let a = ClockAnchor::now();
                self.anchor = Some(a);
                a
            }
        };
        match decode(data, &anchor) {
            Ok(Event::Sock(e)) => self.socks.push(e),
            Ok(Event::Drop(d)) => self.drops.push(d),
            Err(e) => {
                self.undecodable += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// Raw cumulative figures since load.
#[derive(Debug, Clone, Copy, Default)]
struct Raw {
    counters: [u64; counter::MAX as usize],
    main_misses: u64,
    rescue_misses: u64,
    witness_misses: u64,
}

/// The loaded and attached BPF programs, and the reader of their rings.
///
/// Not `Sync`: one thread polls it. `Send`: it may be moved to the thread that will.
pub struct Bpf {
    ring: Option<RingBuffer<'static>>,
    links: Vec<Link>,
    skel: Option<Box<HalfopenSkel<'static>>>,
    storage: Storage,
    pending: Arc<Mutex<Pending>>,
    witness: Option<WitnessHook>,
    transitions: bool,
    undecodable_total: u64,
    /// Loaded with a namespace filter ([`LoadOptions::only_netns`] given).
    filtered: bool,
}

impl std::fmt::Debug for Bpf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bpf")
            .field("transitions", &self.transitions)
            .field("witness", &self.witness)
            .field("links", &self.links.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Bpf {
    fn drop(&mut self) {
        // Readers and links first, then the object (closes programs and maps), then its storage.
        drop(self.ring.take());
        self.links.clear();
        drop(self.skel.take());
        if !self.storage.0.is_null() {
            // SAFETY: allocated by Box::into_raw in `attempt`; the skeleton that borrowed it was
            // dropped above (its OwnedRef dropped the OpenObject/Object in place).
            drop(unsafe { Box::from_raw(self.storage.0) });
            self.storage.0 = std::ptr::null_mut();
        }
    }
}

fn prog_misses(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut info = libbpf_sys::bpf_prog_info::default();
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` and `len` are valid for the call; with every array length zero the kernel
    // writes only the fixed part of `info`.
    let ret = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret));
    }
    Ok(info.recursion_misses)
}

impl Bpf {
    /// Loads and attaches the programs `opts` asks for.
    ///
    /// Errors: [`BpfError::InvalidOption`]; [`BpfError::Unsupported`] without kernel BTF
    /// (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF); [`BpfError::PermissionDenied`]
    /// without CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN); [`BpfError::Load`] when libbpf or the
    /// verifier refuses (the libbpf log is in the error); [`BpfError::Attach`]. With
    /// [`WitnessMode::Auto`] the witness hooks are tried in the order fexit, kprobe, drop
    /// reason (the whole object is reloaded for each); when none works the error is
    /// [`BpfError::Unsupported`] naming each failure.
    pub fn load(opts: &LoadOptions) -> Result<Bpf, BpfError> {
        let wake = opts.validate()?;
        if !std::path::Path::new(KERNEL_BTF).exists() {
            return Err(BpfError::Unsupported {
                what: format!(
                    "no kernel BTF at {KERNEL_BTF} (CONFIG_DEBUG_INFO_BTF): tp_btf, fexit and CO-RE \
                     relocation need it"
                ),
            });
        }
        PRINT_INIT.call_once(|| {
            libbpf_rs::set_print(Some((PrintLevel::Info, libbpf_print)));
        });
        let hooks: &[WitnessHook] = match opts.witness {
            WitnessMode::Off => return Self::attempt(opts, wake, None),
            WitnessMode::Fexit => &[WitnessHook::Fexit],
            WitnessMode::Kprobe => &[WitnessHook::Kretprobe],
            WitnessMode::DropReason => &[WitnessHook::DropReason],
            WitnessMode::Auto => &[WitnessHook::Fexit, WitnessHook::Kretprobe, WitnessHook::DropReason],
        };
        let mut failures = Vec::new();
        for &hook in hooks {
            match Self::attempt(opts, wake, Some(hook)) {
                Ok(b) => return Ok(b),
                Err(e @ BpfError::PermissionDenied { .. }) => return Err(e),
                Err(e) if hooks.len() == 1 => return Err(e),
                Err(e) => failures.push(format!("{hook:?}: {e}")),
            }
        }
        Err(BpfError::Unsupported {
            what: format!(
                "the drop witness could not be loaded with any hook ({}); load with witness: WitnessMode::Off \
                 to run without it",
                failures.join("; ")
            ),
        })
    }

    fn attempt(opts: &LoadOptions, wake: (u32, u32), witness: Option<WitnessHook>) -> Result<Bpf, BpfError> {
        take_log();
        let storage = Box::into_raw(Box::new(MaybeUninit::<OpenObject>::uninit()));
        // From here on, `Bpf`'s Drop frees the storage (and whatever was built in it).
        let mut bpf = Bpf {
            ring: None,
            links: Vec::new(),
            skel: None,
            storage: Storage(storage),
            pending: Arc::new(Mutex::new(Pending::default())),
            witness,
            transitions: opts.transitions,
            undecodable_total: 0,
            filtered: opts.only_netns.is_some(),
        };
        // SAFETY: the storage outlives the skeleton: Bpf's Drop drops the skeleton first.
        let storage_ref: &'static mut MaybeUninit<OpenObject> = unsafe { &mut *storage };
        let mut open = HalfopenSkelBuilder::default()
            .open(storage_ref)
            .map_err(|e| classify("opening the BPF object".into(), &e))?;
        configure(&mut open, opts, wake, witness)?;
        let skel = open
            .load()
            .map_err(|e| classify("loading the BPF programs".into(), &e))?;
        let skel = bpf.skel.insert(Box::new(skel));

        for cookie in opts.only_netns.iter().flatten() {
            skel.maps
                .netns_allow
                .update(&cookie.to_ne_bytes(), &[1u8], MapFlags::ANY)
                .map_err(|e| classify("filling the namespace filter".into(), &e))?;
        }

        // Attach order matters: the kernel calls a tracepoint's programs in attach order, and
        // the rescue must run after on_state (see the crate docs). The cookie-path hooks go
        // before the syn_recv hooks, entry probes before return probes.
        let p = &skel.progs;
        let mut order: Vec<(&str, &libbpf_rs::ProgramMut<'_>)> = Vec::new();
        if opts.transitions {
            order.push(("on_state", &p.on_state));
            order.push(("on_state_rescue", &p.on_state_rescue));
            order.push(("on_syn_retransmit", &p.on_syn_retransmit));
        }
        match witness {
            Some(WitnessHook::Fexit) => order.extend([
                ("fentry_cookie_v4", &p.fentry_cookie_v4),
                ("fexit_cookie_v4", &p.fexit_cookie_v4),
                ("fentry_cookie_v6", &p.fentry_cookie_v6),
                ("fexit_cookie_v6", &p.fexit_cookie_v6),
                ("fexit_syn_recv_v4", &p.fexit_syn_recv_v4),
                ("fexit_syn_recv_v6", &p.fexit_syn_recv_v6),
            ]),
            Some(WitnessHook::Kretprobe) => order.extend([
                ("kp_cookie_v4", &p.kp_cookie_v4),
                ("kret_cookie_v4", &p.kret_cookie_v4),
                ("kp_cookie_v6", &p.kp_cookie_v6),
                ("kret_cookie_v6", &p.kret_cookie_v6),
                ("kp_syn_recv_v4", &p.kp_syn_recv_v4),
                ("kret_syn_recv_v4", &p.kret_syn_recv_v4),
                ("kp_syn_recv_v6", &p.kp_syn_recv_v6),
                ("kret_syn_recv_v6", &p.kret_syn_recv_v6),
            ]),
            Some(WitnessHook::DropReason) => order.push(("on_kfree_skb", &p.on_kfree_skb)),
            None => {}
        }
        for (name, prog) in order {
            let link = prog.attach().map_err(|e| {
                let source = to_io(&e);
                let log = take_log();
                if let Some(missing) =
                    caps::insufficient_here().filter(|_| source.kind() == io::ErrorKind::PermissionDenied)
                {
                    BpfError::PermissionDenied {
                        what: format!("attaching {name}"),
                        missing,
                        source,
                    }
                } else {
                    BpfError::Attach {
                        program: name.to_string(),
                        source,
                        log,
                    }
                }
            })?;
            bpf.links.push(link);
        }

        let skel = bpf.skel.as_deref().expect("set above");
        let mut rb = RingBufferBuilder::new();
        let pending = bpf.pending.clone();
        let push = move |data: &[u8]| {
            lock(&pending).push(data);
            0
        };
        if opts.transitions {
            rb.add(&skel.maps.events, push.clone())
                .map_err(|e| classify("reading the transitions ring".into(), &e))?;
        }
        if witness.is_some() {
            rb.add(&skel.maps.drops, push)
                .map_err(|e| classify("reading the witness ring".into(), &e))?;
        }
        bpf.ring = Some(
            rb.build()
                .map_err(|e| classify("setting up the ring reader".into(), &e))?,
        );
        // Fail at load, not at the first lost() call, if the statistics cannot be read.
        bpf.read_raw()?;
        take_log();
        Ok(bpf)
    }

    /// Stops reporting network namespace `cookie` (its namespace is gone or no longer
    /// covered). Only for programs loaded with a namespace filter; a cookie not in the filter
    /// is not an error.
    ///
    /// Errors: [`BpfError::Read`] when the filter map refuses the deletion.
    pub fn disallow_netns(&mut self, cookie: u64) -> Result<(), BpfError> {
        self.update_filter(|skel| match skel.maps.netns_allow.delete(&cookie.to_ne_bytes()) {
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            r => r,
        })
    }

    /// Reports network namespace `cookie` too, from now on. Only for programs loaded with a
    /// namespace filter ([`LoadOptions::only_netns`] given; without one every namespace is
    /// reported already, and this does nothing).
    ///
    /// Errors: [`BpfError::InvalidOption`] for cookie 0; [`BpfError::Read`] when the filter
    /// map refuses it (full: [`crate::MAX_NETNS_FILTER`] namespaces).
    pub fn allow_netns(&mut self, cookie: u64) -> Result<(), BpfError> {
        if cookie == 0 {
            return Err(BpfError::InvalidOption {
                option: "only_netns",
                reason: "0 is not a namespace cookie".into(),
            });
        }
        self.update_filter(|skel| {
            skel.maps
                .netns_allow
                .update(&cookie.to_ne_bytes(), &[1u8], MapFlags::ANY)
        })
    }

    /// Runs `op` on the namespace filter map when the programs were loaded with one (else
    /// does nothing: every namespace is reported); its error becomes [`BpfError::Read`].
    fn update_filter(
        &mut self,
        op: impl FnOnce(&HalfopenSkel<'static>) -> Result<(), libbpf_rs::Error>,
    ) -> Result<(), BpfError> {
        const WHAT: &str = "updating the namespace filter";
        if !self.filtered {
            return Ok(());
        }
        let skel = self.skel.as_deref().ok_or(BpfError::Read {
            what: WHAT,
            source: io::Error::other("the BPF object is not loaded"),
        })?;
        op(skel).map_err(|e| BpfError::Read {
            what: WHAT,
            source: to_io(&e),
        })
    }

    /// Which hook the drop witness uses (None: no witness loaded).
    pub fn witness_hook(&self) -> Option<WitnessHook> {
        self.witness
    }

    /// Waits up to `timeout` for the rings to signal (they do only when their pending bytes
    /// cross [`LoadOptions::wake_bytes`]), then drains both rings completely, appending to `socks` and `drops` in
    /// ring order (per ring: the order the records were reserved, which for one socket is the
    /// order of its transitions). Meant to be called in a loop about every 10 ms with a 10 ms
    /// timeout. Timestamps are converted with one [`ClockAnchor`] taken at the start of the
    /// call.
    ///
    /// Errors: [`BpfError::Read`] if epoll or the ring reader fails (EINTR is not an error).
    pub fn poll(
        &mut self,
        timeout: Duration,
        socks: &mut Vec<SockEvent>,
        drops: &mut Vec<WitnessedDrop>,
    ) -> Result<PollStats, BpfError> {
        let Some(ring) = self.ring.as_ref() else {
            return Ok(PollStats::default());
        };
        lock(&self.pending).anchor = Some(ClockAnchor::now());
        if let Err(e) = ring.poll(timeout) {
            let source = to_io(&e);
            if source.kind() != io::ErrorKind::Interrupted {
                return Err(BpfError::Read {
                    what: "polling the ring buffers",
                    source,
                });
            }
        }
        ring.consume().map_err(|e| BpfError::Read {
            what: "reading the ring buffers",
            source: to_io(&e),
        })?;
        let mut p = lock(&self.pending);
        let stats = PollStats {
            transitions: p.socks.len(),
            drops: p.drops.len(),
            undecodable: p.undecodable,
            first_decode_error: p.first_error.take(),
        };
        socks.append(&mut p.socks);
        drops.append(&mut p.drops);
        self.undecodable_total += p.undecodable as u64;
        p.undecodable = 0;
        p.anchor = None;
        Ok(stats)
    }

    /// Reads the counters first and the programs' recursion misses second: a miss and its
    /// rescue that happen between the two reads then show as one lost transition until the
    /// next read (an unneeded dump), never the other way round (a hidden loss).
    fn read_raw(&self) -> Result<Raw, BpfError> {
        let skel = self.skel.as_deref().ok_or(BpfError::Read {
            what: "reading the counters",
            source: io::Error::other("the BPF object is not loaded"),
        })?;
        let mut raw = Raw::default();
        for slot in 0..counter::MAX {
            let per_cpu = skel
                .maps
                .counters
                .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
                .map_err(|e| BpfError::Read {
                    what: "reading the counters map",
                    source: to_io(&e),
                })?
                .unwrap_or_default();
            raw.counters[slot as usize] = per_cpu
                .iter()
                .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes))
                .sum();
        }
        let misses = |fd: BorrowedFd<'_>| {
            prog_misses(fd).map_err(|source| BpfError::Read {
                what: "reading a program's recursion_misses (bpf_prog_info)",
                source,
            })
        };
        let p = &skel.progs;
        if self.transitions {
            raw.main_misses = misses(p.on_state.as_fd())?;
            raw.rescue_misses = misses(p.on_state_rescue.as_fd())?;
        }
        let witness_progs: Vec<BorrowedFd<'_>> = match self.witness {
            Some(WitnessHook::Fexit) => vec![
                p.fentry_cookie_v4.as_fd(),
                p.fexit_cookie_v4.as_fd(),
                p.fentry_cookie_v6.as_fd(),
                p.fexit_cookie_v6.as_fd(),
                p.fexit_syn_recv_v4.as_fd(),
                p.fexit_syn_recv_v6.as_fd(),
            ],
            Some(WitnessHook::Kretprobe) => vec![
                p.kp_cookie_v4.as_fd(),
                p.kret_cookie_v4.as_fd(),
                p.kp_cookie_v6.as_fd(),
                p.kret_cookie_v6.as_fd(),
                p.kp_syn_recv_v4.as_fd(),
                p.kret_syn_recv_v4.as_fd(),
                p.kp_syn_recv_v6.as_fd(),
                p.kret_syn_recv_v6.as_fd(),
            ],
            Some(WitnessHook::DropReason) => vec![p.on_kfree_skb.as_fd()],
            None => Vec::new(),
        };
        for fd in witness_progs {
            raw.witness_misses += misses(fd)?;
        }
        Ok(raw)
    }

    /// What was lost since the programs were loaded (cumulative; compare two reads with
    /// [`LossStats::since`]). It includes the transitions skipped in the moment between the
    /// attachment of `on_state` and of its rescue, which precede any dump the caller takes
    /// after `load`. Costs a few syscalls (one per counter slot and one per program): call it
    /// about once a second or once per report, not per poll.
    pub fn lost(&self) -> Result<LossStats, BpfError> {
        let r = self.read_raw()?;
        let c = |slot: u32| r.counters[slot as usize];
        Ok(LossStats {
            transitions_ring_full: c(counter::SOCK_LOST),
            drops_ring_full: c(counter::DROP_LOST),
            recursion_misses: r.main_misses,
            rescued: c(counter::RESCUED),
            rescue_misses: r.rescue_misses,
            witness_misses: r.witness_misses,
            undecodable: self.undecodable_total,
            unreadable: c(counter::UNREADABLE),
        })
    }

    /// What the programs did since they were loaded (cumulative).
    pub fn activity(&self) -> Result<Activity, BpfError> {
        let r = self.read_raw()?;
        let c = |slot: u32| r.counters[slot as usize];
        Ok(Activity {
            transitions_emitted: c(counter::SOCK_EMITTED),
            drops_emitted: c(counter::DROP_EMITTED),
            wakeups: c(counter::WAKEUPS),
            syn_recv_null_not_full: c(counter::NULL_NOT_FULL),
        })
    }
}

/// Ring sizes, read-only data and which programs load.
fn configure(
    open: &mut OpenHalfopenSkel<'_>,
    opts: &LoadOptions,
    wake: (u32, u32),
    witness: Option<WitnessHook>,
) -> Result<(), BpfError> {
    let set_size = |map: &mut libbpf_rs::OpenMapMut<'_>, bytes: u32, what: &str| {
        map.set_max_entries(bytes)
            .map_err(|e| classify(format!("sizing the {what} ring"), &e))
    };
    set_size(&mut open.maps.events, opts.events_ring_bytes, "transitions")?;
    set_size(&mut open.maps.drops, opts.drops_ring_bytes, "witness")?;
    let rodata = open.maps.rodata_data.as_deref_mut().ok_or_else(|| BpfError::Load {
        what: "configuring the BPF programs".into(),
        source: io::Error::other("the object has no .rodata map"),
        log: String::new(),
    })?;
    (rodata.wake_events, rodata.wake_drops) = wake;
    rodata.netns_filtered = u32::from(opts.only_netns.is_some());

    let p = &mut open.progs;
    p.on_state.set_autoload(opts.transitions);
    p.on_state_rescue.set_autoload(opts.transitions);
    p.on_syn_retransmit.set_autoload(opts.transitions);
    let fexit = witness == Some(WitnessHook::Fexit);
    for prog in [
        &mut p.fentry_cookie_v4,
        &mut p.fexit_cookie_v4,
        &mut p.fentry_cookie_v6,
        &mut p.fexit_cookie_v6,
        &mut p.fexit_syn_recv_v4,
        &mut p.fexit_syn_recv_v6,
    ] {
        prog.set_autoload(fexit);
    }
    let kprobe = witness == Some(WitnessHook::Kretprobe);
    for prog in [
        &mut p.kp_cookie_v4,
        &mut p.kret_cookie_v4,
        &mut p.kp_cookie_v6,
        &mut p.kret_cookie_v6,
        &mut p.kp_syn_recv_v4,
        &mut p.kret_syn_recv_v4,
        &mut p.kp_syn_recv_v6,
        &mut p.kret_syn_recv_v6,
    ] {
        prog.set_autoload(kprobe);
    }
    p.on_kfree_skb.set_autoload(witness == Some(WitnessHook::DropReason));
    Ok(())
}
