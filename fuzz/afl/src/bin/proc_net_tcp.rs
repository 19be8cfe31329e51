//! AFL++ harness of `halfopen_fuzz::proc_net_tcp` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| {
        halfopen_fuzz::proc_net_tcp(data);
    });
}
