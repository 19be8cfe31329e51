//! AFL++ harness of `halfopen_fuzz::reconciler_message` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::reconciler_message(data);
    });
}
