/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * events.h: the records the BPF programs put in the ring buffers, and the slots of the
 * counters map. Mirrored field by field by src/raw.rs (#[repr(C)], offsets checked at compile
 * time there); change both together.
 *
 * Every record starts with `kind` (HO_KIND_*), so one decoder tells them apart. Addresses are
 * 16 bytes, IPv4 in IPv4-mapped form (::ffff:a.b.c.d); ports in host byte order.
 */
#ifndef HALFOPEN_EVENTS_H
#define HALFOPEN_EVENTS_H

#define HO_KIND_SOCK 1
#define HO_KIND_DROP 2

/* ho_sock_event.flags */
#define HO_SOCK_RESCUED (1u << 0)   /* emitted by the rescue program */
#define HO_SOCK_OWNER (1u << 1)     /* CLOSE->SYN_SENT/LISTEN: tgid/tid/uid/gid/comm are the connect()/listen() caller */
#define HO_SOCK_PORT (1u << 2)      /* not a transition: a SYN_SENT socket's SYN retransmitted, with its local port */

/* ho_drop_event.flags */
#define HO_DROP_COOKIE_PATH (1u << 0)     /* inside cookie_v4_check/cookie_v6_check on this CPU */
#define HO_DROP_REQ_SYNCOOKIE_KNOWN (1u << 1) /* the kernel has request_sock.syncookie (6.7+) */
#define HO_DROP_REQ_SYNCOOKIE (1u << 2)   /* ... and it was set */
#define HO_DROP_KPROBE (1u << 3)          /* seen by the kretprobe fallback, not fexit */
#define HO_DROP_V6_FN (1u << 4)           /* seen on tcp_v6_syn_recv_sock (else tcp_v4_...) */
#define HO_DROP_KFREE_SKB (1u << 5)       /* seen on tracepoint skb:kfree_skb (drop reason) */

/* Slots of the per-CPU `counters` array (u64 each). */
#define HO_CNT_SOCK_LOST 0      /* transition records that did not fit in the `events` ring */
#define HO_CNT_DROP_LOST 1      /* witness records that did not fit in the `drops` ring */
#define HO_CNT_RESCUED 2        /* firings the rescue covered (on_state skipped them), wanted or not */
#define HO_CNT_NULL_NOT_FULL 3  /* syn_recv_sock returned NULL with the accept queue not full */
#define HO_CNT_SOCK_EMITTED 4   /* transition records submitted */
#define HO_CNT_DROP_EMITTED 5   /* witness records submitted */
#define HO_CNT_WAKEUPS 6        /* submits that forced a wakeup (pending bytes crossed the threshold) */
#define HO_CNT_UNREADABLE 7     /* transitions dropped because the socket's protocol or namespace read as 0 */
#define HO_CNT_MAX 8

struct ho_sock_event {
	__u32 kind;          /* HO_KIND_SOCK */
	__u32 flags;         /* HO_SOCK_* */
	__u64 ts_ns;         /* bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME */
	__u64 netns_cookie;  /* sk->sk_net->net_cookie, as SO_NETNS_COOKIE */
	__u64 sock_cookie;   /* bpf_get_socket_cookie(sk), as sock_diag's idiag_cookie */
	__u8 saddr[16];      /* local */
	__u8 daddr[16];      /* remote */
	__u16 sport;         /* local port (0 at CLOSE->SYN_SENT unless bound) */
	__u16 dport;         /* remote port */
	__u16 family;        /* sk_family: AF_INET or AF_INET6 */
	__u8 oldstate;
	__u8 newstate;
	__u32 tgid;          /* current task: meaningful with HO_SOCK_OWNER only */
	__u32 tid;
	__u32 uid;
	__u32 gid;
	char comm[16];
	__u32 cpu;
	__u32 _pad;
};

struct ho_drop_event {
	__u32 kind;            /* HO_KIND_DROP */
	__u32 flags;           /* HO_DROP_* */
	__u64 ts_ns;           /* CLOCK_BOOTTIME */
	__u64 netns_cookie;    /* of the listener */
	__u64 listener_cookie; /* bpf_get_socket_cookie(listener), as sock_diag's idiag_cookie */
	__u8 laddr[16];        /* ir_loc_addr / ir_v6_loc_addr: the server's end */
	__u8 raddr[16];        /* ir_rmt_addr / ir_v6_rmt_addr: the client */
	__u16 lport;           /* ir_num */
	__u16 rport;           /* ntohs(ir_rmt_port) */
	__u16 family;          /* the listener's sk_family */
	__u16 _pad;
	__u32 ack_backlog;     /* listener's sk_ack_backlog (accept queue length) at return */
	__u32 max_ack_backlog; /* listener's sk_max_ack_backlog */
	__u32 cpu;
	__u32 _pad2;
};

/* Same sizes as the Rust mirrors (src/raw.rs asserts them too). */
_Static_assert(sizeof(struct ho_sock_event) == 112, "ho_sock_event layout changed: update src/raw.rs");
_Static_assert(sizeof(struct ho_drop_event) == 88, "ho_drop_event layout changed: update src/raw.rs");

#endif
