//! End-to-end tests of the eBPF source (placeholder, filled below).
