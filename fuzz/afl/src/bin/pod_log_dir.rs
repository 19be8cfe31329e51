//! AFL++ harness of `halfopen_fuzz::pod_log_dir` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::pod_log_dir(data);
    });
}
