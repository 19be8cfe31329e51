//! AFL++ harness of `halfopen_fuzz::page_token` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::page_token(data);
    });
}
