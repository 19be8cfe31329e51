//! AFL++ harness of `halfopen_fuzz::query_response` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::query_response(data);
    });
}
