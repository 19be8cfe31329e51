//! AFL++ harness of `halfopen_fuzz::cgroup` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::cgroup(data);
    });
}
