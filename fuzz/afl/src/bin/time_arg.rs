//! AFL++ harness of `halfopen_fuzz::time_arg` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::time_arg(data);
    });
}
