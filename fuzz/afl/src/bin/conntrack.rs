//! AFL++ harness of `halfopen_fuzz::conntrack` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::conntrack(data);
    });
}
