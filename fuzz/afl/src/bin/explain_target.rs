//! AFL++ harness of `halfopen_fuzz::explain_target` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::explain_target(data);
    });
}
