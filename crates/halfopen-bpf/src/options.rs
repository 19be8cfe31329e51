//! [`LoadOptions`]: what [`crate::Bpf::load`] loads and how big its ring buffers are, with
//! their validation (pure).

use crate::BpfError;

/// How the drop witness hooks `tcp_v{4,6}_syn_recv_sock` and `cookie_v{4,6}_check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WitnessMode {
    /// No witness programs.
    Off,
    /// The first of fexit, kprobe and drop-reason that loads and attaches.
    #[default]
    Auto,
    /// fexit/fentry only (BPF trampolines, kernel 5.5+ with BTF; `bpf_get_func_ret` needs 5.17+).
    Fexit,
    /// kprobe/kretprobe only (CONFIG_KPROBES).
    Kprobe,
    /// tracepoint `skb:kfree_skb` only (6.11+ for the listener; the normal path needs 6.15+).
    DropReason,
}

/// What to load. `Default` is what the collector should use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Report TCP state transitions (`sock:inet_sock_set_state`). Default true.
    pub transitions: bool,
    /// The drop witness. Default [`WitnessMode::Auto`].
    pub witness: WitnessMode,
    /// Size of the transitions ring in bytes: a power of two, at least 4096 (the page size).
    /// Default 16 MiB: about 140,000 records (112 bytes each plus an 8-byte header), 1.4 s of
    /// transitions at 10,000 new connections/s, so that a reader starved of CPU for a moment
    /// (measured: 4 MiB overflowed on a 2-core machine under a load average of 4) loses
    /// nothing. Locked kernel memory, charged to the loader's memory cgroup.
    pub events_ring_bytes: u32,
    /// Size of the witness ring in bytes, same rules. Default 256 KiB (about 2,700 records).
    pub drops_ring_bytes: u32,
    /// A submit wakes the reader only when it makes the pending bytes of its ring cross this
    /// threshold; below it the reader finds the records at its next timed poll. Default
    /// 256 KiB. Clamped, per ring, to half of that ring.
    pub wake_bytes: u32,
    /// Report only these network namespaces (netns cookies, as `SO_NETNS_COOKIE` gives them;
    /// at most [`MAX_NETNS_FILTER`]), and those [`crate::Bpf::allow_netns`] adds later. An
    /// empty list reports nothing until one is added (a collector that covers other
    /// namespaces but not its own). None (the default): every namespace.
    pub only_netns: Option<Vec<u64>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            transitions: true,
            witness: WitnessMode::Auto,
            events_ring_bytes: 16 << 20,
            drops_ring_bytes: 256 << 10,
            wake_bytes: 256 << 10,
            only_netns: None,
        }
    }
}

/// Most network namespaces [`LoadOptions::only_netns`] may name (the BPF hash map's size).
pub const MAX_NETNS_FILTER: usize = 4096;

impl LoadOptions {
    /// Checks the sizes and the filter; returns the wake thresholds actually used for the
    /// transitions ring and the witness ring (`wake_bytes` clamped to half of each ring).
    pub fn validate(&self) -> Result<(u32, u32), BpfError> {
        for (option, v) in [
            ("events_ring_bytes", self.events_ring_bytes),
            ("drops_ring_bytes", self.drops_ring_bytes),
        ] {
            if v < 4096 || !v.is_power_of_two() {
                return Err(BpfError::InvalidOption {
                    option,
                    reason: format!("{v} is not a power of two of at least 4096 (BPF ring buffers are page-sized)"),
                });
            }
        }
        let only = self.only_netns.as_deref().unwrap_or_default();
        if only.len() > MAX_NETNS_FILTER {
            return Err(BpfError::InvalidOption {
                option: "only_netns",
                reason: format!("{} namespaces, at most {MAX_NETNS_FILTER}", only.len()),
            });
        }
        if only.contains(&0) {
            return Err(BpfError::InvalidOption {
                option: "only_netns",
                reason: "0 is not a namespace cookie".into(),
            });
        }
        if !self.transitions && self.witness == WitnessMode::Off {
            return Err(BpfError::InvalidOption {
                option: "transitions/witness",
                reason: "nothing to load".into(),
            });
        }
        let clamp = |ring: u32| self.wake_bytes.min(ring / 2).max(1);
        Ok((clamp(self.events_ring_bytes), clamp(self.drops_ring_bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_sizes_checked() {
        assert_eq!(LoadOptions::default().validate().unwrap(), (256 << 10, 128 << 10));
        let big = LoadOptions {
            drops_ring_bytes: 1 << 20,
            ..Default::default()
        };
        assert_eq!(big.validate().unwrap(), (256 << 10, 256 << 10));
        for bad in [0, 1000, 4097, 6000] {
            let o = LoadOptions {
                events_ring_bytes: bad,
                ..Default::default()
            };
            assert!(matches!(
                o.validate(),
                Err(BpfError::InvalidOption {
                    option: "events_ring_bytes",
                    ..
                })
            ));
        }
        let tiny = LoadOptions {
            events_ring_bytes: 4096,
            drops_ring_bytes: 4096,
            ..Default::default()
        };
        assert_eq!(tiny.validate().unwrap(), (2048, 2048));
    }

    #[test]
    fn filter_and_emptiness_checked() {
        let o = LoadOptions {
            only_netns: Some(vec![1; MAX_NETNS_FILTER + 1]),
            ..Default::default()
        };
        assert!(o.validate().is_err());
        let o = LoadOptions {
            only_netns: Some(vec![0]),
            ..Default::default()
        };
        assert!(o.validate().is_err());
        // An empty filter (nothing yet) is valid.
        let empty = LoadOptions {
            only_netns: Some(Vec::new()),
            ..Default::default()
        };
        assert!(empty.validate().is_ok());
        let o = LoadOptions {
            transitions: false,
            witness: WitnessMode::Off,
            ..Default::default()
        };
        assert!(o.validate().is_err());
    }
}
