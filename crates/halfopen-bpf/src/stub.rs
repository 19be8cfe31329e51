//! [`Bpf`] without the `bpf` feature: the same API, and every constructor says
//! [`BpfError::NotCompiledIn`], so callers compile unchanged and fall back to polling.

use std::time::Duration;

use crate::{Activity, BpfError, LoadOptions, LossStats, PollStats, SockEvent, WitnessHook, WitnessedDrop};

/// Stands in for the loaded BPF programs in a build without the `bpf` feature. No value of it
/// can exist: [`Bpf::load`] always fails.
#[derive(Debug)]
pub struct Bpf {
    never: std::convert::Infallible,
}

impl Bpf {
    /// Always [`BpfError::NotCompiledIn`] (after checking the options, like the real one).
    pub fn load(opts: &LoadOptions) -> Result<Bpf, BpfError> {
        opts.validate()?;
        Err(BpfError::NotCompiledIn)
    }

    /// Unreachable: there is no `Bpf` to call it on.
    pub fn allow_netns(&mut self, _cookie: u64) -> Result<(), BpfError> {
        match self.never {}
    }

    /// Unreachable: there is no `Bpf` to call it on.
    pub fn disallow_netns(&mut self, _cookie: u64) -> Result<(), BpfError> {
        match self.never {}
    }

    /// Unreachable: there is no `Bpf` to call it on.
    pub fn witness_hook(&self) -> Option<WitnessHook> {
        match self.never {}
    }

    /// Unreachable: there is no `Bpf` to call it on.
    pub fn poll(
        &mut self,
        _timeout: Duration,
        _socks: &mut Vec<SockEvent>,
        _drops: &mut Vec<WitnessedDrop>,
    ) -> Result<PollStats, BpfError> {
        match self.never {}
    }

    /// Unreachable: there is no `Bpf` to call it on.
    pub fn lost(&self) -> Result<LossStats, BpfError> {
        match self.never {}
    }

    /// Unreachable: there is no `Bpf` to call it on.
    pub fn activity(&self) -> Result<Activity, BpfError> {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_says_not_compiled_in() {
        let e = Bpf::load(&LoadOptions::default()).unwrap_err();
        assert!(matches!(e, BpfError::NotCompiledIn), "{e}");
        assert!(e.to_string().contains("without eBPF support"), "{e}");
        // Options are still checked first.
        let bad = LoadOptions {
            events_ring_bytes: 3,
            ..Default::default()
        };
        assert!(matches!(Bpf::load(&bad), Err(BpfError::InvalidOption { .. })));
    }
}
