//! What a poll returned ([`PollStats`]), what was lost ([`LossStats`]) and what the programs
//! did ([`Activity`]). Plain data with pure arithmetic.

use crate::DecodeError;

/// What one [`crate::Bpf::poll`] appended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollStats {
    /// Transitions appended to the caller's vector.
    pub transitions: usize,
    /// Witnessed drops appended.
    pub drops: usize,
    /// Records that did not decode (a kernel/user layout mismatch: a bug). They are also
    /// counted in [`LossStats::undecodable`].
    pub undecodable: usize,
    /// The first decode error of this poll, if any.
    pub first_decode_error: Option<DecodeError>,
}

/// Everything that was not reported, counted since the programs were loaded (cumulative; use
/// [`LossStats::since`] for the change between two reads).
///
/// When [`LossStats::transitions_lost`] moves, the table built from transitions can no longer
/// be trusted: the caller should take a full sock_diag dump. When
/// [`LossStats::witnesses_lost`] moves, some drops went unwitnessed (the kernel's
/// ListenOverflows counter still counts them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossStats {
    /// Transition records dropped because the transitions ring was full (the reader was too
    /// slow, or the ring too small). Counted by the BPF programs (per-CPU array).
    pub transitions_ring_full: u64,
    /// Witness records dropped because the witness ring was full.
    pub drops_ring_full: u64,
    /// Firings of the tracepoint the main program was not run for (the kernel's recursion
    /// guard: `recursion_misses` of `on_state` in bpf_prog_info), in every namespace and
    /// protocol, filtered or not.
    pub recursion_misses: u64,
    /// Of those, firings the rescue program covered (and emitted when they pass the filters).
    pub rescued: u64,
    /// Runs skipped by the recursion guard of the rescue program. Harmless: each was a
    /// transition the main program handled.
    pub rescue_misses: u64,
    /// Runs skipped by the recursion guard of the witness programs (syn_recv_sock hooks and
    /// the cookie-path hooks): a drop may have gone unwitnessed or be labelled with the wrong
    /// path.
    pub witness_misses: u64,
    /// Records that did not decode.
    pub undecodable: u64,
    /// Transitions dropped because the socket's protocol or namespace cookie could not be read
    /// (read as 0).
    pub unreadable: u64,
}

impl LossStats {
    /// Transitions that reached no reader: ring full, plus recursion misses the rescue did not
    /// cover, plus undecodable records, plus sockets that could not be read. May read 1 for a moment while a rescue is in flight on
    /// another CPU.
    pub fn transitions_lost(&self) -> u64 {
        self.transitions_ring_full
            + self.recursion_misses.saturating_sub(self.rescued)
            + self.undecodable
            + self.unreadable
    }

    /// Witnesses that reached no reader (ring full, or a witness program skipped).
    pub fn witnesses_lost(&self) -> u64 {
        self.drops_ring_full + self.witness_misses
    }

    /// Whether anything at all was lost.
    pub fn any_lost(&self) -> bool {
        self.transitions_lost() > 0 || self.witnesses_lost() > 0
    }

    /// The change from an earlier read of the same loader (field by field, saturating).
    pub fn since(&self, earlier: &LossStats) -> LossStats {
        LossStats {
            transitions_ring_full: self.transitions_ring_full.saturating_sub(earlier.transitions_ring_full),
            drops_ring_full: self.drops_ring_full.saturating_sub(earlier.drops_ring_full),
            recursion_misses: self.recursion_misses.saturating_sub(earlier.recursion_misses),
            rescued: self.rescued.saturating_sub(earlier.rescued),
            rescue_misses: self.rescue_misses.saturating_sub(earlier.rescue_misses),
            witness_misses: self.witness_misses.saturating_sub(earlier.witness_misses),
            undecodable: self.undecodable.saturating_sub(earlier.undecodable),
            unreadable: self.unreadable.saturating_sub(earlier.unreadable),
        }
    }
}

/// What the BPF programs did since they were loaded (per-CPU counters, summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Transition records submitted.
    pub transitions_emitted: u64,
    /// Witness records submitted.
    pub drops_emitted: u64,
    /// Submits that forced a wakeup of the reader (pending bytes crossed `wake_bytes`).
    pub wakeups: u64,
    /// `tcp_v{4,6}_syn_recv_sock` returned NULL while the accept queue was not full (no
    /// memory, no route, ...): not witnessed as overflows.
    pub syn_recv_null_not_full: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescued_misses_are_not_lost() {
        let s = LossStats {
            recursion_misses: 5,
            rescued: 5,
            rescue_misses: 2,
            ..Default::default()
        };
        assert_eq!(s.transitions_lost(), 0);
        assert!(!s.any_lost());
        let s = LossStats {
            recursion_misses: 5,
            rescued: 3,
            transitions_ring_full: 1,
            ..Default::default()
        };
        assert_eq!(s.transitions_lost(), 3);
        assert!(s.any_lost());
        let w = LossStats {
            witness_misses: 1,
            ..Default::default()
        };
        assert_eq!(w.witnesses_lost(), 1);
        assert!(w.any_lost());
    }

    #[test]
    fn since_subtracts_field_by_field() {
        let a = LossStats {
            transitions_ring_full: 10,
            recursion_misses: 4,
            rescued: 4,
            undecodable: 1,
            ..Default::default()
        };
        let b = LossStats {
            transitions_ring_full: 12,
            recursion_misses: 6,
            rescued: 5,
            undecodable: 1,
            ..Default::default()
        };
        let d = b.since(&a);
        assert_eq!(d.transitions_ring_full, 2);
        assert_eq!(d.transitions_lost(), 2 + 1);
        assert_eq!(a.since(&b), LossStats::default());
    }
}
