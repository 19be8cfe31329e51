//! AFL++ harness of `halfopen_fuzz::proc_maps` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::proc_maps(data);
    });
}
