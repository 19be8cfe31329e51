//! AFL++ harness of `halfopen_fuzz::netns_spec` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::netns_spec(data);
    });
}
