//! AFL++ harness of `halfopen_fuzz::docker_config` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::docker_config(data);
    });
}
