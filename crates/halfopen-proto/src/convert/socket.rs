//! Sockets and what they are made of: tuples, sides, socket records,
//! processes, listeners, addresses.
use crate::v1;
use halfopen_core::{ip_from_wire, wire_bytes, Listener, Process, Side, SocketRecord, TcpInfoLite, TcpState, Tuple};
use std::net::{IpAddr, SocketAddr};

pub fn tuple_to_wire(t: &Tuple) -> v1::Tuple {
    v1::Tuple {
        local_ip: t.local_ip_bytes(),
        local_port: t.local_port() as u32,
        remote_ip: t.remote_ip_bytes(),
        remote_port: t.remote_port() as u32,
    }
}

pub fn tuple_from_wire(t: &v1::Tuple) -> Option<Tuple> {
    if t.local_port > u16::MAX as u32 || t.remote_port > u16::MAX as u32 {
        return None;
    }
    Tuple::from_raw(&t.local_ip, t.local_port as u16, &t.remote_ip, t.remote_port as u16)
}

pub fn side_to_wire(s: Side) -> i32 {
    match s {
        Side::Client => v1::Side::Client as i32,
        Side::Server => v1::Side::Server as i32,
    }
}

pub fn side_from_wire(s: i32) -> Option<Side> {
    match v1::Side::try_from(s).ok()? {
        v1::Side::Client => Some(Side::Client),
        v1::Side::Server => Some(Side::Server),
        v1::Side::Unspecified => None,
    }
}

pub fn socket_to_wire(r: &SocketRecord) -> v1::Socket {
    v1::Socket {
        tuple: Some(tuple_to_wire(&r.tuple)),
        state: r.state as u32,
        side: side_to_wire(r.side),
        cookie: r.cookie,
        inode: r.inode,
        uid: r.uid,
        keepalive: r.keepalive,
        tcp_info: r.info.map(|i| v1::TcpInfo {
            bytes_received: i.bytes_received,
            bytes_acked: i.bytes_acked,
            last_data_recv_ms: i.last_data_recv_ms,
            rtt_us: i.rtt_us,
        }),
    }
}

pub fn socket_from_wire(s: &v1::Socket) -> Option<SocketRecord> {
    Some(SocketRecord {
        tuple: tuple_from_wire(s.tuple.as_ref()?)?,
        state: TcpState::from_kernel(u8::try_from(s.state).ok()?)?,
        side: side_from_wire(s.side)?,
        cookie: s.cookie,
        inode: s.inode,
        uid: s.uid,
        keepalive: s.keepalive,
        info: s.tcp_info.as_ref().map(|i| TcpInfoLite {
            bytes_received: i.bytes_received,
            bytes_acked: i.bytes_acked,
            last_data_recv_ms: i.last_data_recv_ms,
            rtt_us: i.rtt_us,
        }),
    })
}

pub fn process_to_wire(p: &Process) -> v1::Process {
    v1::Process {
        pid: p.pid,
        comm: p.comm.clone(),
        cmdline: p.cmdline.clone(),
        uid: p.uid,
    }
}

pub fn process_from_wire(p: &v1::Process) -> Process {
    Process {
        pid: p.pid,
        comm: p.comm.clone(),
        cmdline: p.cmdline.clone(),
        uid: p.uid,
    }
}

pub fn listener_to_wire(l: &Listener) -> v1::Listener {
    v1::Listener {
        ip: wire_bytes(l.addr.ip()),
        port: l.addr.port() as u32,
        queue: l.queue,
        backlog: l.backlog,
        inode: l.inode,
        uid: l.uid,
        process: l.process.as_ref().map(process_to_wire),
        libwrap: l.libwrap,
        drops: l.drops,
    }
}

pub fn listener_from_wire(l: &v1::Listener) -> Option<Listener> {
    Some(Listener {
        addr: SocketAddr::new(ip_from_wire(&l.ip)?, u16::try_from(l.port).ok()?),
        queue: l.queue,
        backlog: l.backlog,
        inode: l.inode,
        uid: l.uid,
        process: l.process.as_ref().map(process_from_wire),
        libwrap: l.libwrap,
        drops: l.drops,
    })
}

pub fn addrs_to_wire(a: &[IpAddr]) -> Vec<Vec<u8>> {
    a.iter().map(|ip| wire_bytes(*ip)).collect()
}

pub fn addrs_from_wire(a: &[Vec<u8>]) -> Vec<IpAddr> {
    a.iter().filter_map(|b| ip_from_wire(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_round_trip() {
        let r = SocketRecord {
            tuple: Tuple::new(
                "[::ffff:198.18.0.1]:3306".parse().unwrap(),
                "198.18.0.2:4000".parse().unwrap(),
            ),
            state: TcpState::TimeWait,
            side: Side::Server,
            cookie: u64::MAX,
            inode: 12,
            uid: 1000,
            keepalive: true,
            info: Some(TcpInfoLite {
                bytes_received: 1,
                bytes_acked: 2,
                last_data_recv_ms: 3,
                rtt_us: 4,
            }),
        };
        let w = socket_to_wire(&r);
        assert_eq!(
            w.tuple.as_ref().unwrap().local_ip.len(),
            4,
            "mapped addresses travel as IPv4"
        );
        assert_eq!(socket_from_wire(&w), Some(r));
    }

    #[test]
    fn bad_wire_input_is_rejected_not_panicking() {
        let mut w = socket_to_wire(&SocketRecord {
            tuple: Tuple::new("198.18.0.1:1".parse().unwrap(), "198.18.0.2:2".parse().unwrap()),
            state: TcpState::Established,
            side: Side::Client,
            cookie: 1,
            inode: 1,
            uid: 0,
            keepalive: false,
            info: None,
        });
        w.state = 99;
        assert!(socket_from_wire(&w).is_none());
        w.state = 1;
        w.side = 0;
        assert!(socket_from_wire(&w).is_none());
        w.side = 1;
        w.tuple.as_mut().unwrap().local_ip = vec![1, 2, 3];
        assert!(socket_from_wire(&w).is_none());
        w.tuple.as_mut().unwrap().local_ip = vec![1, 2, 3, 4];
        w.tuple.as_mut().unwrap().local_port = 70000;
        assert!(socket_from_wire(&w).is_none());
    }
}
