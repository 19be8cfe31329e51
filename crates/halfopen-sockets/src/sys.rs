//! Thin wrappers over openat, getdents64, readlinkat and read for the /proc
//! walk, built so that walking hundreds of thousands of fds allocates
//! nothing per fd: directory entries come out of a caller's buffer as `&CStr`,
//! paths are formatted on the stack, links are read into a stack buffer.
//! All `unsafe` of the crate's /proc code lives here.
use std::ffi::CStr;
use std::fmt::{self, Write as _};
use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A NUL-terminated path formatted on the stack (at most 63 bytes).
pub(crate) struct StackPath {
    buf: [u8; 64],
    len: usize,
}

impl fmt::Write for StackPath {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let b = s.as_bytes();
        // keep one byte for the NUL; refuse interior NULs
        if self.len + b.len() >= self.buf.len() || b.contains(&0) {
            return Err(fmt::Error);
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
        Ok(())
    }
}

impl StackPath {
    /// None if the formatted path does not fit.
    pub(crate) fn new(args: fmt::Arguments<'_>) -> Option<StackPath> {
        let mut p = StackPath { buf: [0; 64], len: 0 };
        p.write_fmt(args).ok()?;
        Some(p)
    }

    pub(crate) fn as_cstr(&self) -> &CStr {
        // The buffer is zeroed past `len` and has no interior NUL.
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// openat(dirfd, path, O_RDONLY | O_CLOEXEC | extra); `dirfd` None = cwd.
pub(crate) fn open_at(dirfd: Option<BorrowedFd<'_>>, path: &CStr, extra: libc::c_int) -> io::Result<OwnedFd> {
    let dfd: RawFd = dirfd.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    loop {
        // SAFETY: path is NUL-terminated; dfd is a valid fd or AT_FDCWD.
        let rc = unsafe { libc::openat(dfd, path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | extra) };
        match cvt(rc) {
            // SAFETY: openat returned a new fd that nothing else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Opens a directory relative to `dirfd`.
pub(crate) fn open_dir_at(dirfd: Option<BorrowedFd<'_>>, path: &CStr) -> io::Result<OwnedFd> {
    open_at(dirfd, path, libc::O_DIRECTORY)
}

/// readlinkat into `buf`; the link's bytes (possibly cut to `buf.len()`).
pub(crate) fn readlink_at<'b>(dirfd: BorrowedFd<'_>, path: &CStr, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
    // SAFETY: path is NUL-terminated, buf is valid for buf.len() bytes.
    let n = unsafe { libc::readlinkat(dirfd.as_raw_fd(), path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(&buf[..(n as usize).min(buf.len())])
}

/// Reads the whole file at `path` (relative to `dirfd`) into `out` (cleared).
pub(crate) fn read_file_at(dirfd: BorrowedFd<'_>, path: &CStr, out: &mut Vec<u8>) -> io::Result<()> {
    use std::io::Read;
    let fd = open_at(Some(dirfd), path, 0)?;
    out.clear();
    std::fs::File::from(fd).read_to_end(out)?;
    Ok(())
}

/// Calls `f` with the name of every entry of the directory `fd` (including
/// "." and ".."), reading with getdents64 into `buf`. Stops when `f` breaks.
pub(crate) fn for_each_dirent(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    mut f: impl FnMut(&CStr) -> ControlFlow<()>,
) -> io::Result<ControlFlow<()>> {
    loop {
        // SAFETY: buf is valid for buf.len() bytes; fd is an open directory.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(ControlFlow::Continue(()));
        }
        if parse_dirents(&buf[..n as usize], &mut f).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
}

/// Walks `struct linux_dirent64` records: d_ino u64, d_off i64, d_reclen u16,
/// d_type u8, d_name (NUL-terminated). Stops at a malformed record.
fn parse_dirents(b: &[u8], f: &mut impl FnMut(&CStr) -> ControlFlow<()>) -> ControlFlow<()> {
    const NAME: usize = 19;
    let mut pos = 0;
    while pos + NAME < b.len() {
        let reclen = usize::from(u16::from_ne_bytes([b[pos + 16], b[pos + 17]]));
        if reclen <= NAME || pos + reclen > b.len() {
            break;
        }
        if let Ok(name) = CStr::from_bytes_until_nul(&b[pos + NAME..pos + reclen]) {
            f(name)?;
        }
        pos += reclen;
    }
    ControlFlow::Continue(())
}

/// Parses a decimal u32 made only of ASCII digits (a pid or an fd name).
pub(crate) fn parse_u32(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    u32::try_from(v).ok()
}

/// The inode of a "socket:[N]" link target.
pub(crate) fn parse_socket_link(b: &[u8]) -> Option<u64> {
    let digits = b.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits
        .iter()
        .try_fold(0u64, |v, &c| v.checked_mul(10)?.checked_add(u64::from(c - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link(b"socket:[12345]"), Some(12345));
        assert_eq!(parse_socket_link(b"socket:[0]"), Some(0));
        assert_eq!(parse_socket_link(b"socket:[]"), None);
        assert_eq!(parse_socket_link(b"pipe:[12345]"), None);
        assert_eq!(parse_socket_link(b"/dev/null"), None);
        assert_eq!(parse_socket_link(b"socket:[99999999999999999999]"), None);
        assert_eq!(parse_socket_link(b"socket:[12a]"), None);
    }

    #[test]
    fn u32s() {
        assert_eq!(parse_u32(b"1234"), Some(1234));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"self"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"."), None);
    }

    #[test]
    fn stack_paths() {
        let p = StackPath::new(format_args!("{}/fd/{}", 1234, 56)).unwrap();
        assert_eq!(p.as_cstr().to_bytes(), b"1234/fd/56");
        assert!(StackPath::new(format_args!("{}", "x".repeat(64))).is_none());
        assert!(StackPath::new(format_args!("a\0b")).is_none());
    }

    #[test]
    fn lists_a_real_directory() {
        let fd = open_dir_at(None, c"/proc/self/fd").unwrap();
        let mut buf = vec![0u8; 4096];
        let mut names = Vec::new();
        let flow = for_each_dirent(fd.as_fd(), &mut buf, |n| {
            names.push(n.to_bytes().to_vec());
            ControlFlow::Continue(())
        });
        assert_eq!(flow.unwrap(), ControlFlow::Continue(()));
        assert!(names.contains(&b".".to_vec()));
        // at least the directory's own fd
        assert!(names.iter().any(|n| parse_u32(n).is_some()));
    }

    use std::os::fd::AsFd;

    proptest! {
        #[test]
        fn random_dirents_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_dirents(&b, &mut |_| ControlFlow::Continue(()));
            let _ = parse_socket_link(&b);
            let _ = parse_u32(&b);
        }
    }
}
