//! Port filters: the inet_diag bytecode program that makes the kernel return
//! only sockets whose local or remote port is in a set ([`encode_port_filter`],
//! or the remote port only, [`encode_remote_port_filter`]; pure), and the
//! same test in user space ([`PortSet`]) for the /proc source and for port
//! lists too long for a program.
//!
//! The program is the value of an `INET_DIAG_REQ_BYTECODE` attribute after
//! `struct inet_diag_req_v2`. It is a sequence of `struct inet_diag_bc_op
//! { u8 code; u8 yes; u16 no; }` (host byte order); a port comparison is
//! followed by a second op whose `no` holds the port. The kernel
//! (net/ipv4/inet_diag.c, `inet_diag_bc_run`) starts at offset 0 with
//! `len` = program length and for each op adds `yes` (condition true) or
//! `no` (false; a JMP is always false) to the offset; the socket is accepted
//! when `len` reaches exactly 0 and rejected when it goes below 0 (by
//! convention a jump to end + 4). Before the dump, `inet_diag_bc_audit`
//! rejects with EINVAL any program whose `yes` chain does not cover it
//! exactly, whose jumps are not multiples of 4, shorter than the op, past
//! end + 4, or land inside an op.
//!
//! Layout used (the shape `ss` compiles `sport = :a or dport = :b` to): one
//! block per (direction, port range), each a single `S_EQ`/`D_EQ` op or a
//! `S_GE` + `S_LE` (`D_GE` + `D_LE`) pair, blocks separated by a JMP:
//!
//! ```text
//! B1 JMP B2 JMP ... Bn
//! ```
//!
//! Every op of a block jumps on "false" to the end of its block + 4: past
//! the following JMP, onto the next block, or, after the last block, to
//! end + 4 (reject). On "true" an op steps to the next op; the end of a block
//! is its JMP, which jumps to the end of the program (accept), or, for the
//! last block, the end itself. All sport blocks come first, then all dport
//! blocks (only dport blocks for the remote-only program). Ports are
//! sorted, deduplicated, and runs of consecutive ports
//! become one range. The kernel evaluates the blocks in order, so the cost
//! per socket grows with the number of ranges (two ops per range for a
//! socket that matches none).

/// Attribute type of the bytecode in a sock_diag request.
pub const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// `struct inet_diag_bc_op` codes (include/uapi/linux/inet_diag.h).
pub const INET_DIAG_BC_JMP: u8 = 1;
pub const INET_DIAG_BC_S_GE: u8 = 2;
pub const INET_DIAG_BC_S_LE: u8 = 3;
pub const INET_DIAG_BC_D_GE: u8 = 4;
pub const INET_DIAG_BC_D_LE: u8 = 5;
pub const INET_DIAG_BC_S_EQ: u8 = 11;
pub const INET_DIAG_BC_D_EQ: u8 = 12;
/// The longest program that fits: an attribute's 16-bit length includes its
/// 4-byte header, and offsets are 16-bit (`no`) and 8-bit (`yes`).
pub const MAX_PROGRAM_LEN: usize = u16::MAX as usize - 4 - 3;

fn op(out: &mut Vec<u8>, code: u8, yes: u8, no: u16) {
    out.push(code);
    out.push(yes);
    out.extend_from_slice(&no.to_ne_bytes());
}

/// Sorted, deduplicated runs of consecutive ports: (first, last).
pub fn port_ranges(ports: &[u16]) -> Vec<(u16, u16)> {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<(u16, u16)> = Vec::new();
    for p in sorted {
        match ranges.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(p) => *last = p,
            _ => ranges.push((p, p)),
        }
    }
    ranges
}

/// Writes into `out` (cleared first) an inet_diag bytecode program that
/// accepts a socket when its local (source) or remote (destination) port is
/// in `ports`. Duplicates and order do not matter. An empty `ports` gives a
/// program that rejects everything (a single JMP to end + 4).
///
/// Returns false, with `out` empty, when the program would be longer than
/// [`MAX_PROGRAM_LEN`] (more than about 2,700 separate ports); the caller
/// then has to filter in user space.
pub fn encode_port_filter(ports: &[u16], out: &mut Vec<u8>) -> bool {
    encode(ports, &[LOCAL, REMOTE], out)
}

/// Like [`encode_port_filter`], but only the remote (destination) port is
/// tested: the sockets of this host that connected to one of `ports`, not
/// those accepted on them. Fits about 5,400 separate ports.
pub fn encode_remote_port_filter(ports: &[u16], out: &mut Vec<u8>) -> bool {
    encode(ports, &[REMOTE], out)
}

/// (equal, greater-or-equal, less-or-equal) codes of one direction.
type Codes = (u8, u8, u8);
const LOCAL: Codes = (INET_DIAG_BC_S_EQ, INET_DIAG_BC_S_GE, INET_DIAG_BC_S_LE);
const REMOTE: Codes = (INET_DIAG_BC_D_EQ, INET_DIAG_BC_D_GE, INET_DIAG_BC_D_LE);

fn encode(ports: &[u16], directions: &[Codes], out: &mut Vec<u8>) -> bool {
    out.clear();
    let ranges = port_ranges(ports);
    if ranges.is_empty() || directions.is_empty() {
        op(out, INET_DIAG_BC_JMP, 4, 8);
        return true;
    }
    let block_len = |(a, b): (u16, u16)| if a == b { 8usize } else { 16 };
    let one_direction: usize = ranges.iter().map(|&r| block_len(r)).sum();
    let blocks = directions.len() * ranges.len();
    let total = directions.len() * one_direction + 4 * (blocks - 1);
    if total > MAX_PROGRAM_LEN {
        return false;
    }
    out.reserve(total);
    let mut written_blocks = 0;
    for &(eq, ge, le) in directions {
        for &(a, b) in &ranges {
            if a == b {
                // false: skip this op (8) and the JMP after it (4)
                op(out, eq, 8, 12);
                op(out, 0, 0, a);
            } else {
                op(out, ge, 8, 20);
                op(out, 0, 0, a);
                op(out, le, 8, 12);
                op(out, 0, 0, b);
            }
            written_blocks += 1;
            if written_blocks < blocks {
                // true: jump from here to the end (accept)
                let rest = total - out.len(); // this JMP included
                op(out, INET_DIAG_BC_JMP, 4, rest as u16);
            }
        }
    }
    debug_assert_eq!(out.len(), total);
    true
}

/// A set of ports as a 65,536-bit bitmap: the user-space version of the
/// program, for the /proc source and for port lists too long to encode.
#[derive(Clone)]
pub struct PortSet {
    bits: Box<[u64; 1024]>,
}

impl std::fmt::Debug for PortSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        f.debug_struct("PortSet").field("ports", &n).finish()
    }
}

impl PortSet {
    pub fn new(ports: &[u16]) -> PortSet {
        let mut bits = Box::new([0u64; 1024]);
        for &p in ports {
            bits[usize::from(p >> 6)] |= 1 << (p & 63);
        }
        PortSet { bits }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.bits[usize::from(port >> 6)] & (1 << (port & 63)) != 0
    }

    /// What the kernel program decides: local or remote port in the set.
    pub fn matches(&self, local: u16, remote: u16) -> bool {
        self.contains(local) || self.contains(remote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ops(b: &[u8]) -> Vec<(u8, u8, u16)> {
        b.chunks(4)
            .map(|c| (c[0], c[1], u16::from_ne_bytes([c[2], c[3]])))
            .collect()
    }

    fn bytes(ops: &[(u8, u8, u16)]) -> Vec<u8> {
        let mut v = Vec::new();
        for &(c, y, n) in ops {
            op(&mut v, c, y, n);
        }
        v
    }

    /// `inet_diag_bc_audit` of net/ipv4/inet_diag.c (Linux 6.x), for the
    /// ops this module emits; any other code is refused as the kernel does.
    /// Returns the kernel's verdict: Ok or EINVAL.
    fn kernel_audit(bc: &[u8]) -> Result<(), &'static str> {
        let at = |off: usize| -> (u8, i32, i32) {
            (
                bc[off],
                i32::from(bc[off + 1]),
                i32::from(u16::from_ne_bytes([bc[off + 2], bc[off + 3]])),
            )
        };
        let total = bc.len() as i32;
        if total < 4 {
            return Err("shorter than one op");
        }
        // valid_cc: is `cc` (remaining length at the target) on the yes chain?
        let valid_cc = |cc: i32| {
            let mut len = total;
            let mut off = 0usize;
            while len >= 0 {
                if cc > len {
                    return false;
                }
                if cc == len {
                    return true;
                }
                let (_, yes, _) = at(off);
                if yes < 4 || yes & 3 != 0 {
                    return false;
                }
                len -= yes;
                off += yes as usize;
            }
            false
        };
        let mut len = total;
        let mut off = 0usize;
        while len > 0 {
            let (code, yes, no) = at(off);
            let mut min_len = 4;
            match code {
                INET_DIAG_BC_S_EQ | INET_DIAG_BC_S_GE | INET_DIAG_BC_S_LE | INET_DIAG_BC_D_EQ | INET_DIAG_BC_D_GE
                | INET_DIAG_BC_D_LE => {
                    min_len += 4;
                    if len < min_len {
                        return Err("port comparison without its port");
                    }
                }
                INET_DIAG_BC_JMP | 0 => {}
                _ => return Err("unknown code"),
            }
            if code != 0 {
                if no < min_len || no > len + 4 || no & 3 != 0 {
                    return Err("bad no");
                }
                if no < len && !valid_cc(len - no) {
                    return Err("no lands inside an op");
                }
            }
            if yes < min_len || yes > len + 4 || yes & 3 != 0 {
                return Err("bad yes");
            }
            off += yes as usize;
            len -= yes;
        }
        if len == 0 {
            Ok(())
        } else {
            Err("yes chain does not end at the end")
        }
    }

    /// `inet_diag_bc_run`: does the program accept a socket with these ports?
    fn kernel_run(bc: &[u8], sport: u16, dport: u16) -> bool {
        let mut len = bc.len() as i32;
        let mut off = 0i32;
        while len > 0 {
            let o = off as usize;
            let (code, yes, no) = (
                bc[o],
                i32::from(bc[o + 1]),
                i32::from(u16::from_ne_bytes([bc[o + 2], bc[o + 3]])),
            );
            let arg = || u16::from_ne_bytes([bc[o + 6], bc[o + 7]]);
            let t = match code {
                0 => true,
                INET_DIAG_BC_JMP => false,
                INET_DIAG_BC_S_EQ => sport == arg(),
                INET_DIAG_BC_S_GE => sport >= arg(),
                INET_DIAG_BC_S_LE => sport <= arg(),
                INET_DIAG_BC_D_EQ => dport == arg(),
                INET_DIAG_BC_D_GE => dport >= arg(),
                INET_DIAG_BC_D_LE => dport <= arg(),
                c => panic!("code {c} not emitted"),
            };
            let step = if t { yes } else { no };
            len -= step;
            off += step;
        }
        len == 0
    }

    #[test]
    fn one_port_byte_exact() {
        let mut b = Vec::new();
        assert!(encode_port_filter(&[3306], &mut b));
        let want = bytes(&[
            (INET_DIAG_BC_S_EQ, 8, 12),
            (0, 0, 3306),
            (INET_DIAG_BC_JMP, 4, 12),
            (INET_DIAG_BC_D_EQ, 8, 12),
            (0, 0, 3306),
        ]);
        assert_eq!(b, want);
        // literally: the first op is 0b 08 0c 00 on a little-endian host
        if cfg!(target_endian = "little") {
            assert_eq!(&b[..8], &[11, 8, 12, 0, 0, 0, 0xea, 0x0c]);
        }
        assert_eq!(kernel_audit(&b), Ok(()));
    }

    #[test]
    fn three_ports_byte_exact_sorted_and_deduplicated() {
        let mut b = Vec::new();
        assert!(encode_port_filter(&[8080, 22, 443, 22], &mut b));
        // 6 blocks of 8 bytes + 5 JMPs = 68 bytes
        assert_eq!(b.len(), 68);
        let want = bytes(&[
            (INET_DIAG_BC_S_EQ, 8, 12),
            (0, 0, 22),
            (INET_DIAG_BC_JMP, 4, 60),
            (INET_DIAG_BC_S_EQ, 8, 12),
            (0, 0, 443),
            (INET_DIAG_BC_JMP, 4, 48),
            (INET_DIAG_BC_S_EQ, 8, 12),
            (0, 0, 8080),
            (INET_DIAG_BC_JMP, 4, 36),
            (INET_DIAG_BC_D_EQ, 8, 12),
            (0, 0, 22),
            (INET_DIAG_BC_JMP, 4, 24),
            (INET_DIAG_BC_D_EQ, 8, 12),
            (0, 0, 443),
            (INET_DIAG_BC_JMP, 4, 12),
            (INET_DIAG_BC_D_EQ, 8, 12),
            (0, 0, 8080),
        ]);
        assert_eq!(ops(&b), ops(&want));
        assert_eq!(kernel_audit(&b), Ok(()));
        for (s, d, want) in [
            (22, 1, true),
            (1, 22, true),
            (443, 50000, true),
            (50000, 8080, true),
            (23, 8081, false),
            (0, 0, false),
            (8080, 8080, true),
        ] {
            assert_eq!(kernel_run(&b, s, d), want, "sport {s} dport {d}");
        }
    }

    #[test]
    fn runs_become_ranges() {
        let mut b = Vec::new();
        assert!(encode_port_filter(&[5001, 5000, 5002, 7], &mut b));
        assert_eq!(port_ranges(&[5001, 5000, 5002, 7]), vec![(7, 7), (5000, 5002)]);
        let want = bytes(&[
            (INET_DIAG_BC_S_EQ, 8, 12),
            (0, 0, 7),
            (INET_DIAG_BC_JMP, 4, 52),
            (INET_DIAG_BC_S_GE, 8, 20),
            (0, 0, 5000),
            (INET_DIAG_BC_S_LE, 8, 12),
            (0, 0, 5002),
            (INET_DIAG_BC_JMP, 4, 32),
            (INET_DIAG_BC_D_EQ, 8, 12),
            (0, 0, 7),
            (INET_DIAG_BC_JMP, 4, 20),
            (INET_DIAG_BC_D_GE, 8, 20),
            (0, 0, 5000),
            (INET_DIAG_BC_D_LE, 8, 12),
            (0, 0, 5002),
        ]);
        assert_eq!(ops(&b), ops(&want));
        assert_eq!(kernel_audit(&b), Ok(()));
        assert!(kernel_run(&b, 5001, 1));
        assert!(kernel_run(&b, 1, 5002));
        assert!(!kernel_run(&b, 5003, 4999));
        // the edges of the port space
        assert!(encode_port_filter(&[0, 65535, 65534], &mut b));
        assert_eq!(kernel_audit(&b), Ok(()));
        assert!(kernel_run(&b, 65535, 1) && kernel_run(&b, 1, 0) && !kernel_run(&b, 1, 65533));
    }

    #[test]
    fn remote_only_byte_exact() {
        let mut b = Vec::new();
        assert!(encode_remote_port_filter(&[3306, 22], &mut b));
        let want = bytes(&[
            (INET_DIAG_BC_D_EQ, 8, 12),
            (0, 0, 22),
            (INET_DIAG_BC_JMP, 4, 12),
            (INET_DIAG_BC_D_EQ, 8, 12),
            (0, 0, 3306),
        ]);
        assert_eq!(ops(&b), ops(&want));
        assert_eq!(kernel_audit(&b), Ok(()));
        assert!(kernel_run(&b, 50000, 3306));
        assert!(!kernel_run(&b, 3306, 50000), "accepted on 3306: not a remote port");
        assert!(encode_remote_port_filter(&[], &mut b));
        assert!(!kernel_run(&b, 1, 1));
        let many: Vec<u16> = (0..5000u16).map(|i| i * 2).collect();
        assert!(encode_remote_port_filter(&many, &mut b));
        assert_eq!(kernel_audit(&b), Ok(()));
        assert!(!encode_port_filter(&many, &mut b));
    }

    #[test]
    fn empty_rejects_everything() {
        let mut b = vec![1, 2, 3];
        assert!(encode_port_filter(&[], &mut b));
        assert_eq!(ops(&b), vec![(INET_DIAG_BC_JMP, 4, 8)]);
        assert_eq!(kernel_audit(&b), Ok(()));
        assert!(!kernel_run(&b, 1, 2));
    }

    #[test]
    fn too_many_separate_ports_do_not_encode() {
        let mut b = Vec::new();
        // every other port: no runs, 24 bytes per port
        let many: Vec<u16> = (0..3000u16).map(|i| i * 2).collect();
        assert!(!encode_port_filter(&many, &mut b));
        assert!(b.is_empty());
        // while a whole range is one block per direction
        let all: Vec<u16> = (0..=u16::MAX).collect();
        assert!(encode_port_filter(&all, &mut b));
        assert_eq!(b.len(), 36);
        // the largest list that fits passes the audit
        let fit: Vec<u16> = (0..2730u16).map(|i| i * 2).collect();
        assert!(encode_port_filter(&fit, &mut b));
        assert!(b.len() <= MAX_PROGRAM_LEN);
        assert_eq!(kernel_audit(&b), Ok(()));
    }

    #[test]
    fn audit_model_refuses_what_the_kernel_refuses() {
        // yes chain short of the end
        assert!(kernel_audit(&bytes(&[
            (INET_DIAG_BC_S_EQ, 8, 12),
            (0, 0, 1),
            (INET_DIAG_BC_JMP, 8, 8)
        ]))
        .is_err());
        // a `no` landing on the port operand
        assert!(kernel_audit(&bytes(&[
            (INET_DIAG_BC_S_EQ, 8, 4),
            (0, 0, 1),
            (INET_DIAG_BC_D_EQ, 8, 12),
            (0, 0, 1)
        ]))
        .is_err());
        // a comparison without its operand
        assert!(kernel_audit(&bytes(&[(INET_DIAG_BC_S_EQ, 4, 8)])).is_err());
    }

    #[test]
    fn port_set() {
        let s = PortSet::new(&[0, 80, 65535, 80]);
        assert!(s.contains(0) && s.contains(80) && s.contains(65535));
        assert!(!s.contains(81) && !s.contains(65534));
        assert!(s.matches(1, 80) && s.matches(80, 1) && !s.matches(1, 2));
        assert_eq!(format!("{s:?}"), "PortSet { ports: 3 }");
    }

    proptest! {
        #[test]
        fn program_passes_the_audit_and_decides_like_the_set(
            ports in proptest::collection::vec(any::<u16>(), 0..80),
            near in proptest::collection::vec(0u16..40, 0..40),
            probes in proptest::collection::vec((any::<u16>(), any::<u16>()), 0..64),
        ) {
            // `near` adds clustered ports so that ranges are exercised
            let mut all = ports.clone();
            all.extend(near.iter().map(|&n| 1000 + n));
            let mut b = Vec::new();
            prop_assert!(encode_port_filter(&all, &mut b));
            prop_assert_eq!(kernel_audit(&b), Ok(()));
            let set = PortSet::new(&all);
            let mut remote = Vec::new();
            prop_assert!(encode_remote_port_filter(&all, &mut remote));
            prop_assert_eq!(kernel_audit(&remote), Ok(()));
            let mut probes = probes;
            for &p in all.iter().take(8) {
                probes.push((p, p.wrapping_add(1)));
                probes.push((p.wrapping_sub(1), p));
                probes.push((p.wrapping_add(1), p.wrapping_sub(1)));
            }
            for (s, d) in probes {
                prop_assert_eq!(kernel_run(&b, s, d), set.matches(s, d), "sport {} dport {}", s, d);
                prop_assert_eq!(kernel_run(&remote, s, d), set.contains(d), "remote: sport {} dport {}", s, d);
            }
        }
    }
}
