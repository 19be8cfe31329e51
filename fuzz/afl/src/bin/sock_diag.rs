//! AFL++ harness of `halfopen_fuzz::sock_diag` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::sock_diag(data);
    });
}
