//! Files the collector reads, one whole file per input, handed to the
//! parser the way its reader does (text through the same UTF-8 step):
//! - [`proc_net_tcp`]: /proc/net/tcp{,6} (`halfopen_sockets::procnet`);
//! - [`proc_net_counters`]: /proc/net/netstat and snmp
//!   (`halfopen_core::counters`);
//! - [`proc_maps`]: /proc/PID/maps, for libwrap (`halfopen_collector::hostinfo`);
//! - [`cgroup`]: /proc/PID/cgroup (`halfopen_sockets::containers`);
//! - [`pod_log_dir`]: a /var/log/pods directory name;
//! - [`docker_config`]: Docker's config.v2.json.
//!
//! Checked: what parses prints back to text that parses to the same value
//! (/proc/net lines, counters), ids and names have the shapes their types
//! promise, and labels made from names hold only their safe characters and
//! decode back to the name.
use std::fmt::Write as _;
use std::net::IpAddr;

use halfopen_collector::hostinfo::maps_have_libwrap;
use halfopen_core::counters::parse_proc_net_counters;
use halfopen_sockets::containers::{
    label_component, parse_cgroup, parse_cgroup_path, parse_docker_name, parse_pod_log_dir, ContainerId, ContainerRef,
};
use halfopen_sockets::procnet::{parse_line, ProcNetEntry};
use halfopen_sockets::Family;

use crate::wire::assert_canonical_tuple;

/// /proc/net/tcp or tcp6: every line as both families (a line parses as
/// at most one of them). `ProcNetReader` rejects a file that is not UTF-8.
pub fn proc_net_tcp(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        let v4 = parse_line(line, Family::V4);
        let v6 = parse_line(line, Family::V6);
        assert!(
            !matches!((&v4, &v6), (Ok(Some(_)), Ok(Some(_)))),
            "a line of both families: {line:?}"
        );
        for (family, r) in [(Family::V4, v4), (Family::V6, v6)] {
            let Ok(Some(e)) = r else { continue };
            assert_canonical_tuple(&e.tuple);
            if family == Family::V4 {
                assert!(e.tuple.local_ip().is_ipv4() && e.tuple.remote_ip().is_ipv4());
            }
            let printed = kernel_line(&e, family);
            assert_eq!(parse_line(&printed, family), Ok(Some(e)), "{printed:?} from {line:?}");
        }
    }
}

/// An entry as the kernel prints it (net/ipv4/tcp_ipv4.c `get_tcp4_sock`).
fn kernel_line(e: &ProcNetEntry, family: Family) -> String {
    let addr = |ip: IpAddr| {
        let bytes: Vec<u8> = match (family, ip) {
            (Family::V4, IpAddr::V4(v4)) => v4.octets().to_vec(),
            (Family::V4, IpAddr::V6(v6)) => v6.octets()[12..].to_vec(),
            (Family::V6, IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets().to_vec(),
            (Family::V6, IpAddr::V6(v6)) => v6.octets().to_vec(),
        };
        bytes.chunks(4).fold(String::new(), |mut s, w| {
            let _ = write!(s, "{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
            s
        })
    };
    let t = e.tuple;
    format!(
        "   0: {}:{:04X} {}:{:04X} {:02X} {:08X}:{:08X} {:02X}:00000000 {:08X} {:5} 0 {}",
        addr(t.local_ip()),
        t.local_port(),
        addr(t.remote_ip()),
        t.remote_port(),
        e.state,
        e.tx_queue,
        e.rx_queue,
        e.timer,
        e.retransmits,
        e.uid,
        e.inode
    )
}

/// /proc/net/netstat or snmp (read with `read_to_string`: UTF-8 only).
pub fn proc_net_counters(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(counters) = parse_proc_net_counters(text) else {
        return;
    };
    assert!(
        counters.len() <= text.split_whitespace().count(),
        "more counters than words"
    );
    assert!(counters.keys().all(|k| k.contains('.')), "every counter is Prefix.Name");
    // Printed back one pair of lines per counter, it parses to the same map
    // when every key splits into a prefix and a name the format can hold.
    let mut printed = String::new();
    for (k, v) in &counters {
        let Some((prefix, name)) = k.split_once('.') else {
            continue;
        };
        let plain = |s: &str| !s.is_empty() && !s.contains(':') && !s.chars().any(char::is_whitespace);
        if !plain(prefix) || !plain(name) {
            return;
        }
        let _ = writeln!(printed, "{prefix}: {name}\n{prefix}: {v}");
    }
    assert_eq!(parse_proc_net_counters(&printed), Ok(counters), "counters round trip");
}

/// /proc/PID/maps (read with `read_to_string`: UTF-8 only).
pub fn proc_maps(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if maps_have_libwrap(text) {
        assert!(text.contains("libwrap.so"));
    }
    // Nothing before a libwrap mapping can hide it.
    let with =
        format!("{text}\n7f1e0000-7f1e1000 r-xp 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libwrap.so.0.7.6\n");
    assert!(maps_have_libwrap(&with), "a libwrap mapping after {text:?} was missed");
}

/// /proc/PID/cgroup (`read_cgroup` reads it lossily as UTF-8).
pub fn cgroup(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let best = parse_cgroup(&text);
    let mut any = false;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        if let (Some(_), Some(_), Some(path)) = (parts.next(), parts.next(), parts.next()) {
            if let Some(r) = parse_cgroup_path(path) {
                check_ref(&r);
                any = true;
            }
        }
    }
    assert_eq!(
        best.is_some(),
        any,
        "the file names a container exactly when one of its lines does"
    );
    if let Some(r) = &best {
        check_ref(r);
    }
}

fn check_container(c: &ContainerId) {
    assert!(
        c.id.len() == 64 && c.id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "container id {:?}",
        c.id
    );
    assert_eq!(c.short(), &c.id[..12]);
}

fn check_uid(uid: &str) {
    assert!(uid.len() == 32 || uid.len() == 36, "pod uid {uid:?}");
    assert!(uid
        .bytes()
        .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(uid.bytes().filter(u8::is_ascii_hexdigit).count(), 32);
}

fn check_ref(r: &ContainerRef) {
    match r {
        ContainerRef::Container(c) => check_container(c),
        ContainerRef::Pod { uid, container } => {
            check_uid(uid);
            if let Some(c) = container {
                check_container(c);
            }
        }
    }
}

/// A /var/log/pods directory name (`read_pod_dirs` keeps UTF-8 names only).
pub fn pod_log_dir(data: &[u8]) {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    check_label(name);
    let Some(p) = parse_pod_log_dir(name) else {
        return;
    };
    check_uid(&p.uid);
    assert!(!p.namespace.is_empty() && !p.name.is_empty());
    let again = format!("{}_{}_{}", p.namespace, p.name, p.uid);
    assert_eq!(parse_pod_log_dir(&again).as_ref(), Some(&p), "pod dir round trip");
    let q = p.qualified();
    check_label(&q);
}

/// Docker's `config.v2.json` (read as bytes, at most 8 MiB).
pub fn docker_config(data: &[u8]) {
    let Ok(Some(name)) = parse_docker_name(data) else {
        return;
    };
    assert!(!name.is_empty() && !name.starts_with('/'), "container name {name:?}");
    check_label(&name);
}

/// A label made of `s` holds only `[A-Za-z0-9._%-]`, never starts with
/// `.`, and decodes back to `s` (`containers::label_component`).
fn check_label(s: &str) {
    let l = label_component(s);
    assert!(
        l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'-')),
        "label {l:?}"
    );
    assert!(!l.starts_with('.'));
    let mut decoded = Vec::with_capacity(l.len());
    let b = l.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            decoded.push(byte.unwrap_or_else(|| panic!("label {l:?}: no two hex digits after %")));
            i += 3;
        } else {
            decoded.push(b[i]);
            i += 1;
        }
    }
    assert_eq!(decoded, s.as_bytes(), "label {l:?} does not decode to {s:?}");
}
