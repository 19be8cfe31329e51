//! /proc/net/tcp and /proc/net/tcp6: a pure line parser ([`parse_line`]) and
//! a reader ([`ProcNetReader`]). This is the fallback for kernels or sandboxes
//! that refuse netlink sock_diag; it is slower (the kernel formats text) and
//! has no socket cookie and no tcp_info.
//!
//! Format (net/ipv4/tcp_ipv4.c, net/ipv6/tcp_ipv6.c), one socket a line:
//! `sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...`
//! - addresses are hex of 32-bit words in *host* byte order: `0100007F:1F90`
//!   is 127.0.0.1:8080 on a little-endian machine; IPv6 is four such words;
//!   ports are plain hex numbers;
//! - `st` is the kernel state number in hex (`0A` = LISTEN, `06` = TIME_WAIT;
//!   request sockets show `03`);
//! - `tr` is the pending timer: 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 probe;
//! - for LISTEN, `rx_queue` is the accept queue length; the backlog is not
//!   shown.
//! - TIME_WAIT lines stop after the inode; the others carry more fields,
//!   which are ignored.
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use halfopen_core::Tuple;

use crate::error::ScanError;
use crate::Family;

/// Why a line did not parse. `&'static str` names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("invalid field {0}")]
    Invalid(&'static str),
}

/// One line of /proc/net/tcp{,6}.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcNetEntry {
    /// Canonical; local = this host's end.
    pub tuple: Tuple,
    /// Kernel state number.
    pub state: u8,
    pub tx_queue: u32,
    /// For LISTEN: the accept queue length.
    pub rx_queue: u32,
    /// `tr`: 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero window probe.
    pub timer: u8,
    pub retransmits: u32,
    pub uid: u32,
    /// 0 for TIME_WAIT, request sockets and sockets in an accept queue.
    pub inode: u64,
}

fn hex_u32(s: &str, field: &'static str) -> Result<u32, ParseError> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ParseError::Invalid(field));
    }
    u32::from_str_radix(s, 16).map_err(|_| ParseError::Invalid(field))
}

fn dec<T: std::str::FromStr>(s: &str, field: &'static str) -> Result<T, ParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Invalid(field));
    }
    s.parse().map_err(|_| ParseError::Invalid(field))
}

/// Parses `ADDR:PORT` into network-order address bytes (in `out`, 4 or 16 of
/// them used) and the port.
fn endpoint(s: &str, family: Family, out: &mut [u8; 16], field: &'static str) -> Result<(usize, u16), ParseError> {
    let (addr, port) = s.split_once(':').ok_or(ParseError::Invalid(field))?;
    let words = match family {
        Family::V4 => 1,
        Family::V6 => 4,
    };
    if addr.len() != 8 * words || port.len() != 4 {
        return Err(ParseError::Invalid(field));
    }
    for i in 0..words {
        // Each word was printed as the native-endian u32 at that place of the
        // (network order) address: its native bytes are the address bytes.
        let word = addr.get(8 * i..8 * i + 8).ok_or(ParseError::Invalid(field))?;
        let w = hex_u32(word, field)?;
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    let port = hex_u32(port, field)?;
    Ok((4 * words, port as u16))
}

fn pair<'a>(s: &'a str, field: &'static str) -> Result<(&'a str, &'a str), ParseError> {
    s.split_once(':').ok_or(ParseError::Invalid(field))
}

/// Parses one line. `Ok(None)` for the header line and blank lines.
pub fn parse_line(line: &str, family: Family) -> Result<Option<ProcNetEntry>, ParseError> {
    let mut f = line.split_ascii_whitespace();
    let Some(sl) = f.next() else {
        return Ok(None);
    };
    if sl == "sl" {
        return Ok(None);
    }
    if !sl.ends_with(':') {
        return Err(ParseError::Invalid("sl"));
    }
    let mut next = |name: &'static str| f.next().ok_or(ParseError::Missing(name));
    let local = next("local_address")?;
    let remote = next("rem_address")?;
    let st = next("st")?;
    let queues = next("tx_queue:rx_queue")?;
    let timer = next("tr:tm->when")?;
    let retrnsmt = next("retrnsmt")?;
    let uid = next("uid")?;
    let _timeout = next("timeout")?;
    let inode = next("inode")?;

    let (mut l, mut r) = ([0u8; 16], [0u8; 16]);
    let (ln, lport) = endpoint(local, family, &mut l, "local_address")?;
    let (rn, rport) = endpoint(remote, family, &mut r, "rem_address")?;
    let tuple = Tuple::from_raw(&l[..ln], lport, &r[..rn], rport).ok_or(ParseError::Invalid("local_address"))?;
    let state = hex_u32(st, "st")?;
    if st.len() > 2 {
        return Err(ParseError::Invalid("st"));
    }
    let (tx, rx) = pair(queues, "tx_queue:rx_queue")?;
    let (tr, _when) = pair(timer, "tr:tm->when")?;
    if tr.len() > 2 {
        return Err(ParseError::Invalid("tr"));
    }
    Ok(Some(ProcNetEntry {
        tuple,
        state: state as u8,
        tx_queue: hex_u32(tx, "tx_queue")?,
        rx_queue: hex_u32(rx, "rx_queue")?,
        timer: hex_u32(tr, "tr")? as u8,
        retransmits: hex_u32(retrnsmt, "retrnsmt")?,
        uid: dec(uid, "uid")?,
        inode: dec(inode, "inode")?,
    }))
}

/// Reads /proc/net/tcp and /proc/net/tcp6 of the network namespace of the
/// thread that created it: the files are opened once (through
/// /proc/thread-self, which fixes the namespace) and re-read from the start
/// at every scan, into one reused buffer.
#[derive(Debug)]
pub struct ProcNetReader {
    files: [Slot; 2],
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Slot {
    path: PathBuf,
    file: Option<File>,
}

impl Slot {
    fn open(&mut self) -> Result<Option<&mut File>, ScanError> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                // tcp6 is missing when IPv6 is disabled: no IPv6 sockets.
                Err(e) if e.kind() == io::ErrorKind::NotFound && self.path.ends_with("tcp6") => return Ok(None),
                Err(source) => {
                    return Err(ScanError::Proc {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
        Ok(self.file.as_mut())
    }
}

fn net_dir() -> &'static Path {
    if Path::new("/proc/thread-self/net").exists() {
        Path::new("/proc/thread-self/net")
    } else {
        Path::new("/proc/net")
    }
}

impl Default for ProcNetReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcNetReader {
    /// Opens the files now if it can; a failure is reported by the first read.
    pub fn new() -> ProcNetReader {
        let dir = net_dir();
        let mut r = ProcNetReader {
            files: [
                Slot {
                    path: dir.join("tcp"),
                    file: None,
                },
                Slot {
                    path: dir.join("tcp6"),
                    file: None,
                },
            ],
            buf: Vec::with_capacity(64 * 1024),
        };
        for s in &mut r.files {
            let _ = s.open();
        }
        r
    }

    /// Calls `f` for every line of both files.
    pub fn for_each(&mut self, mut f: impl FnMut(Family, &ProcNetEntry)) -> Result<(), ScanError> {
        for (slot, family) in self.files.iter_mut().zip(Family::ALL) {
            let path = slot.path.clone();
            let io_err = |source| ScanError::Proc {
                path: path.clone(),
                source,
            };
            let Some(file) = slot.open()? else {
                continue;
            };
            self.buf.clear();
            file.seek(SeekFrom::Start(0)).map_err(io_err)?;
            file.read_to_end(&mut self.buf).map_err(io_err)?;
            let text =
                std::str::from_utf8(&self.buf).map_err(|e| io_err(io::Error::new(io::ErrorKind::InvalidData, e)))?;
            for (i, line) in text.lines().enumerate() {
                match parse_line(line, family) {
                    Ok(Some(e)) => f(family, &e),
                    Ok(None) => {}
                    Err(source) => {
                        return Err(ScanError::ProcParse {
                            path,
                            line: i + 1,
                            source,
                        })
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Real lines (kernel 6.18, x86_64) captured from /proc/net/tcp{,6} with a
    // listener (backlog 5, two unaccepted clients), a keepalive client, a
    // TIME_WAIT and a dual-stack listener; trailing spaces kept.
    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     ";
    const LISTEN4: &str = "   0: 0100007F:C20D 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 12451 3 000000000b97a837 100 0 0 10 0                     ";
    const QUEUED4: &str = "   4: 0100007F:C20D 0100007F:DADC 01 00000000:00000000 00:00000000 00000000     0        0 0 1 000000004eb598d7 20 0 0 10 -1                         ";
    const ESTAB4_KA: &str = "   5: 0100007F:DADA 0100007F:C20D 01 00000000:00000000 02:00057E22 00000000     0        0 12452 3 00000000f04a076a 20 0 0 10 -1                     ";
    const ESTAB4_RX: &str = "   7: 0100007F:9276 0100007F:B48B 01 00000000:00000064 00:00000000 00000000     0        0 12458 2 000000004f651b34 20 4 30 10 -1                    ";
    const TW4: &str = "   3: 0100007F:CE14 0100007F:AC03 06 00000000:00000000 03:0000175C 00000000     0        0 0 3 000000001f2ca25e                                      ";
    const HEADER6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";
    const LISTEN6: &str = "   0: 00000000000000000000000000000000:B48B 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12457 1 00000000b309e6f3 100 0 0 10 0";
    const ESTAB6_LO: &str = "   1: 00000000000000000000000001000000:8F64 00000000000000000000000001000000:B48B 01 00000000:00000000 00:00000000 00000000     0        0 12459 2 00000000560575c8 20 0 0 10 -1";
    const ESTAB6_MAPPED: &str = "   3: 0000000000000000FFFF00000100007F:B48B 0000000000000000FFFF00000100007F:9276 01 00000000:00000000 00:00000000 00000000     0        0 12460 2 000000007bfc2532 20 0 0 11 -1";

    fn p(line: &str, f: Family) -> ProcNetEntry {
        parse_line(line, f).unwrap().unwrap()
    }

    #[test]
    fn header_and_blank_lines_are_skipped() {
        assert_eq!(parse_line(HEADER, Family::V4), Ok(None));
        assert_eq!(parse_line(HEADER6, Family::V6), Ok(None));
        assert_eq!(parse_line("", Family::V6), Ok(None));
        assert_eq!(parse_line("   ", Family::V6), Ok(None));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv4_lines() {
        let e = p(LISTEN4, Family::V4);
        assert_eq!(e.tuple.local().to_string(), "127.0.0.1:49677");
        assert_eq!(e.tuple.remote().to_string(), "0.0.0.0:0");
        assert_eq!(e.state, 0x0A);
        assert_eq!((e.tx_queue, e.rx_queue), (0, 2), "rx_queue = accept queue");
        assert_eq!(e.timer, 0);
        assert_eq!(e.inode, 12451);

        let e = p(QUEUED4, Family::V4);
        assert_eq!(e.tuple.local().to_string(), "127.0.0.1:49677");
        assert_eq!(e.tuple.remote().to_string(), "127.0.0.1:56028");
        assert_eq!(e.state, 1);
        assert_eq!(e.inode, 0, "still in the accept queue");

        let e = p(ESTAB4_KA, Family::V4);
        assert_eq!(e.tuple.local().to_string(), "127.0.0.1:56026");
        assert_eq!(e.tuple.remote().to_string(), "127.0.0.1:49677");
        assert_eq!(e.timer, 2, "keepalive");
        assert_eq!(e.uid, 0);
        assert_eq!(e.inode, 12452);

        let e = p(ESTAB4_RX, Family::V4);
        assert_eq!(e.rx_queue, 100);
        assert_eq!(e.tuple.remote().to_string(), "127.0.0.1:46219");

        let e = p(TW4, Family::V4);
        assert_eq!(e.state, 6);
        assert_eq!(e.timer, 3);
        assert_eq!(e.inode, 0);
        assert_eq!(e.tuple.local().to_string(), "127.0.0.1:52756");
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn ipv6_lines() {
        let e = p(LISTEN6, Family::V6);
        assert_eq!(e.tuple.local().to_string(), "[::]:46219");
        assert_eq!(e.state, 0x0A);
        assert_eq!(e.inode, 12457);

        let e = p(ESTAB6_LO, Family::V6);
        assert_eq!(e.tuple.local().to_string(), "[::1]:36708");
        assert_eq!(e.tuple.remote().to_string(), "[::1]:46219");
        assert_eq!(e.inode, 12459);

        let e = p(ESTAB6_MAPPED, Family::V6);
        assert_eq!(e.tuple.local().to_string(), "127.0.0.1:46219", "mapped folds to IPv4");
        assert_eq!(e.tuple.remote().to_string(), "127.0.0.1:37494");
        // the same connection seen from the client, in /proc/net/tcp
        assert_eq!(p(ESTAB4_RX, Family::V4).tuple, e.tuple.mirror());
    }

    #[test]
    fn bad_lines_are_errors() {
        assert_eq!(
            parse_line("   0: 0100007F:C20D", Family::V4),
            Err(ParseError::Missing("rem_address"))
        );
        // an IPv6 line read as IPv4
        assert_eq!(
            parse_line(LISTEN6, Family::V4),
            Err(ParseError::Invalid("local_address"))
        );
        assert_eq!(
            parse_line(LISTEN4, Family::V6),
            Err(ParseError::Invalid("local_address"))
        );
        let bad = LISTEN4.replace("0100007F", "01G0007F");
        assert_eq!(parse_line(&bad, Family::V4), Err(ParseError::Invalid("local_address")));
        let bad = LISTEN4.replace(" 12451 ", " -1 ");
        assert_eq!(parse_line(&bad, Family::V4), Err(ParseError::Invalid("inode")));
        assert_eq!(parse_line("x y", Family::V4), Err(ParseError::Invalid("sl")));
    }

    proptest! {
        #[test]
        fn random_text_never_panics(s in ".{0,200}") {
            let _ = parse_line(&s, Family::V4);
            let _ = parse_line(&s, Family::V6);
        }

        #[test]
        fn mutated_real_lines_never_panic(i in 0usize..200, c in any::<char>(), which in 0usize..3) {
            let base = [LISTEN4, ESTAB6_MAPPED, TW4][which];
            let mut s: Vec<char> = base.chars().collect();
            let i = i % s.len();
            s[i] = c;
            let s: String = s.into_iter().collect();
            let _ = parse_line(&s, Family::V4);
            let _ = parse_line(&s, Family::V6);
        }
    }
}
