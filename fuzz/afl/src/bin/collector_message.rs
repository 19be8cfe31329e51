//! AFL++ harness of `halfopen_fuzz::collector_message` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::collector_message(data);
    });
}
