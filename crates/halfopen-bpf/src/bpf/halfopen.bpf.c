// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * halfopen.bpf.c: the BPF side of halfopen-bpf.
 *
 * 1. TCP state transitions (tracepoint sock:inet_sock_set_state, as tp_btf), with the
 *    connect()ing task for CLOSE->SYN_SENT, into the `events` ring.
 * 2. Witnesses of completed handshakes dropped because the listener's accept queue was full
 *    (fexit on tcp_v4_syn_recv_sock / tcp_v6_syn_recv_sock, kretprobe fallback), into `drops`.
 *
 * Both rings are submitted without a wakeup until more than `wake_events`/`wake_drops` bytes
 * are pending: user space polls them on a timer (a wakeup per event costs far more than the
 * event).
 *
 * The recursion guard and its rescue (see the crate docs, module `design`): the kernel runs a
 * tp_btf program at most once at a time per CPU (per-program per-CPU `active` counter in
 * __bpf_trace_run); a transition fired while the program is already running on that CPU (a
 * softirq that interrupted it) is skipped and only counted in the program's recursion_misses.
 * So a second program, on_state_rescue, is attached to the same tracepoint after on_state: the
 * kernel calls the two in attach order. on_state records a key (socket cookie, old, new state,
 * time) of each transition it handles in a small per-CPU table; on_state_rescue emits a
 * transition only when that key is not there (on_state missed it) and otherwise consumes the
 * key. Their `active` windows never overlap for one firing, so one of the two always runs:
 * a nested firing inside on_state's window is emitted by the rescue, and one inside the
 * rescue's window was emitted by on_state itself.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader before load (.rodata). */
const volatile __u32 netns_filtered = 0;      /* 1: only the namespaces in netns_allow */
const volatile __u32 wake_events = 256 * 1024; /* wake the reader when `events` crosses this */
const volatile __u32 wake_drops = 64 * 1024;   /* wake the reader when `drops` crosses this */

/* Network namespace cookies to report when netns_filtered is set (filled before attach). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* MAX_NETNS_FILTER in options.rs; --max-namespaces is 1024 by default */
	__type(key, __u64);
	__type(value, __u8);
} netns_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* the loader sets the size */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 << 10);
} drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HO_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Keys of the transitions on_state handled, per CPU, for on_state_rescue. A key lives from
 * on_state to the rescue for the same firing: microseconds, or a softirq run (a few ms) when
 * one interrupts between them. Keys the rescue never consumes (it was itself skipped) are
 * stale: they expire after SEEN_TTL_NS, so that a burst of them cannot fill the table and
 * push out a live key (which makes the rescue emit that firing a second time). */
#define SEEN_SLOTS 16
#define SEEN_TTL_NS 20000000ULL
struct seen_key {
	__u64 cookie; /* 0: free slot */
	__u64 ts_ns;
	__u32 oldstate;
	__u32 newstate;
};
struct seen_table {
	struct seen_key slot[SEEN_SLOTS];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct seen_table);
} seen SEC(".maps");

/* Depth of cookie_v4_check/cookie_v6_check on this CPU (> 0: the SYN-cookie path). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cookie_depth SEC(".maps");

/* Arguments of tcp_v{4,6}_syn_recv_sock saved by the kprobe fallback (slot 0: v4, 1: v6). */
struct syn_recv_args {
	struct sock *sk;
	struct sk_buff *skb;
	struct request_sock *req;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct syn_recv_args);
} kp_args SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &slot);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Submit without a wakeup, unless this record made the pending bytes cross `wake` (once per
 * crossing, not for every record above it: the reader is already on its way). The reader
 * also polls on a timer, so a crossing missed by racing producers costs one timer period. */
static __always_inline void submit(void *ring, void *rec, __u32 size, __u32 wake)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 avail = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA); /* includes this record */
	__u64 step = size + 8;                                      /* record + ring header */
	if (avail >= wake && avail < wake + step) {
		flags = BPF_RB_FORCE_WAKEUP;
		count(HO_CNT_WAKEUPS);
	}
	bpf_ringbuf_submit(rec, flags);
}

static __always_inline void v4_mapped(__u8 *dst, __be32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

static __always_inline bool netns_wanted(__u64 netns)
{
	return !netns_filtered || bpf_map_lookup_elem(&netns_allow, &netns) != NULL;
}

/* Whether a transition of this socket is reported; fills its namespace cookie. */
static __always_inline bool wanted(const struct sock *sk, __u64 *netns)
{
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	*netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, net_cookie);
	if (proto == 0 || *netns == 0) {
		/* A read that failed (every socket has a protocol, every namespace a cookie). */
		count(HO_CNT_UNREADABLE);
		return false;
	}
	if (proto != IPPROTO_TCP)
		return false;
	return netns_wanted(*netns);
}

static __always_inline void emit_transition(const struct sock *sk, __u64 netns, __u64 cookie, int oldstate,
					    int newstate, __u32 flags)
{
	struct ho_sock_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(HO_CNT_SOCK_LOST);
		return;
	}
	e->kind = HO_KIND_SOCK;
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->netns_cookie = netns;
	e->sock_cookie = cookie;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->oldstate = oldstate;
	e->newstate = newstate;
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	struct in6_addr d6 = {}, s6 = {};
	bool v6 = false;
	if (e->family == AF_INET6) {
		d6 = BPF_CORE_READ(sk, __sk_common.skc_v6_daddr);
		/* A dual-stack socket talking IPv4 keeps the IPv4 fields exact; its v6 fields are
		 * the v4-mapped form (or not yet set while the connection is being built). */
		v6 = !(d6.in6_u.u6_addr32[0] == 0 && d6.in6_u.u6_addr32[1] == 0 &&
		       d6.in6_u.u6_addr32[2] == bpf_htonl(0xffff));
	}
	if (v6) {
		s6 = BPF_CORE_READ(sk, __sk_common.skc_v6_rcv_saddr);
		__builtin_memcpy(e->saddr, &s6, 16);
		__builtin_memcpy(e->daddr, &d6, 16);
	} else {
		v4_mapped(e->saddr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		v4_mapped(e->daddr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	}
	if (oldstate == TCP_CLOSE && (newstate == TCP_SYN_SENT || newstate == TCP_LISTEN)) {
		/* Inside connect() or listen(), in the calling task. */
		__u64 pid_tgid = bpf_get_current_pid_tgid();
		__u64 uid_gid = bpf_get_current_uid_gid();
		flags |= HO_SOCK_OWNER;
		e->tgid = pid_tgid >> 32;
		e->tid = (__u32)pid_tgid;
		e->uid = (__u32)uid_gid;
		e->gid = uid_gid >> 32;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	} else {
		e->tgid = 0;
		e->tid = 0;
		e->uid = 0;
		e->gid = 0;
		__builtin_memset(e->comm, 0, sizeof(e->comm));
	}
	e->flags = flags;
	e->cpu = bpf_get_smp_processor_id();
	e->_pad = 0;
	count(HO_CNT_SOCK_EMITTED);
	submit(&events, e, sizeof(*e), wake_events);
}

/*
 * Keys are recorded and looked up for every firing, before any filter: the kernel counts
 * on_state's recursion misses for every firing, so the rescue must count (HO_CNT_RESCUED)
 * every firing it covers, wanted or not, for `misses - rescued` to mean "lost".
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state, const struct sock *sk, const int oldstate, const int newstate)
{
	__u64 cookie = bpf_get_socket_cookie((void *)sk);
	__u64 now = bpf_ktime_get_boot_ns();
	__u32 zero = 0;
	struct seen_table *t = bpf_map_lookup_elem(&seen, &zero);
	if (t) {
		/* A free or expired slot, else the oldest. */
		__u32 pick = 0;
		__u64 oldest = ~0ULL;
		for (__u32 i = 0; i < SEEN_SLOTS; i++) {
			struct seen_key *k = &t->slot[i];
			if (k->cookie == 0 || now - k->ts_ns > SEEN_TTL_NS) {
				pick = i;
				break;
			}
			if (k->ts_ns < oldest) {
				oldest = k->ts_ns;
				pick = i;
			}
		}
		if (pick < SEEN_SLOTS) {
			struct seen_key *k = &t->slot[pick];
			k->ts_ns = now;
			k->oldstate = oldstate;
			k->newstate = newstate;
			k->cookie = cookie;
		}
	}
	__u64 netns = 0;
	if (wanted(sk, &netns))
		emit_transition(sk, netns, cookie, oldstate, newstate, 0);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state_rescue, const struct sock *sk, const int oldstate, const int newstate)
{
	__u64 cookie = bpf_get_socket_cookie((void *)sk);
	__u64 now = bpf_ktime_get_boot_ns();
	__u32 zero = 0;
	struct seen_table *t = bpf_map_lookup_elem(&seen, &zero);
	if (t) {
		for (__u32 i = 0; i < SEEN_SLOTS; i++) {
			struct seen_key *k = &t->slot[i];
			if (k->cookie == cookie && k->oldstate == (__u32)oldstate && k->newstate == (__u32)newstate &&
			    now - k->ts_ns <= SEEN_TTL_NS) {
				k->cookie = 0; /* on_state saw it */
				return 0;
			}
		}
	}
	count(HO_CNT_RESCUED);
	__u64 netns = 0;
	if (wanted(sk, &netns))
		emit_transition(sk, netns, cookie, oldstate, newstate, HO_SOCK_RESCUED);
	return 0;
}

/*
 * The local port of a connecting socket. CLOSE->SYN_SENT fires inside connect() before the
 * kernel picks the port (inet_hash_connect), so a client whose SYN goes unanswered would stay
 * in the table without it until its next transition. Its SYN is retransmitted after the
 * initial RTO (1 s, include/net/tcp.h TCP_TIMEOUT_INIT): that firing carries the full tuple.
 * Emitted as SYN_SENT->SYN_SENT with HO_SOCK_PORT. Retransmissions of other sockets return
 * at once. Not rescued: a skipped firing is followed by the next retransmission.
 */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(on_syn_retransmit, const struct sock *sk)
{
	if (BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_SYN_SENT)
		return 0;
	__u64 netns = 0;
	if (wanted(sk, &netns))
		emit_transition(sk, netns, bpf_get_socket_cookie((void *)sk), TCP_SYN_SENT, TCP_SYN_SENT, HO_SOCK_PORT);
	return 0;
}

/* ---- the drop witness ---- */

static __always_inline void cookie_enter(void)
{
	__u32 zero = 0;
	__u32 *d = bpf_map_lookup_elem(&cookie_depth, &zero);
	if (d)
		*d += 1;
}

static __always_inline void cookie_exit(void)
{
	__u32 zero = 0;
	__u32 *d = bpf_map_lookup_elem(&cookie_depth, &zero);
	if (d && *d > 0)
		*d -= 1;
}

static __always_inline bool on_cookie_path(void)
{
	__u32 zero = 0;
	__u32 *d = bpf_map_lookup_elem(&cookie_depth, &zero);
	return d && *d > 0;
}

/*
 * tcp_v{4,6}_syn_recv_sock returned NULL for listener `sk` and request `req`. It is an
 * accept-queue overflow when the queue is full (sk_acceptq_is_full: sk_ack_backlog >
 * sk_max_ack_backlog, include/net/sock.h); other NULL returns (no memory, no route) are only
 * counted.
 */
static __always_inline void witness(const struct sock *sk, const struct request_sock *req, bool v6_fn,
				    __u64 listener_cookie, __u32 flags)
{
	__u32 ack = BPF_CORE_READ(sk, sk_ack_backlog);
	__u32 max = BPF_CORE_READ(sk, sk_max_ack_backlog);
	if (!(ack > max)) {
		count(HO_CNT_NULL_NOT_FULL);
		return;
	}
	__u64 netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, net_cookie);
	if (!netns_wanted(netns))
		return;
	struct ho_drop_event *e = bpf_ringbuf_reserve(&drops, sizeof(*e), 0);
	if (!e) {
		count(HO_CNT_DROP_LOST);
		return;
	}
	e->kind = HO_KIND_DROP;
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->netns_cookie = netns;
	e->listener_cookie = listener_cookie;
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->_pad = 0;
	e->ack_backlog = ack;
	e->max_ack_backlog = max;
	e->lport = BPF_CORE_READ(req, __req_common.skc_num);               /* ir_num */
	e->rport = bpf_ntohs(BPF_CORE_READ(req, __req_common.skc_dport));  /* ir_rmt_port */
	if (v6_fn) {
		struct in6_addr l = BPF_CORE_READ(req, __req_common.skc_v6_rcv_saddr); /* ir_v6_loc_addr */
		struct in6_addr r = BPF_CORE_READ(req, __req_common.skc_v6_daddr);     /* ir_v6_rmt_addr */
		__builtin_memcpy(e->laddr, &l, 16);
		__builtin_memcpy(e->raddr, &r, 16);
		flags |= HO_DROP_V6_FN;
	} else {
		v4_mapped(e->laddr, BPF_CORE_READ(req, __req_common.skc_rcv_saddr)); /* ir_loc_addr */
		v4_mapped(e->raddr, BPF_CORE_READ(req, __req_common.skc_daddr));     /* ir_rmt_addr */
	}
	if (on_cookie_path())
		flags |= HO_DROP_COOKIE_PATH;
	if (bpf_core_field_exists(req->syncookie)) {
		flags |= HO_DROP_REQ_SYNCOOKIE_KNOWN;
		if (BPF_CORE_READ_BITFIELD_PROBED(req, syncookie))
			flags |= HO_DROP_REQ_SYNCOOKIE;
	}
	e->flags = flags;
	e->cpu = bpf_get_smp_processor_id();
	e->_pad2 = 0;
	count(HO_CNT_DROP_EMITTED);
	submit(&drops, e, sizeof(*e), wake_drops);
}

/* A v4-mapped connection on a dual-stack listener goes through tcp_v6_syn_recv_sock, which
 * calls tcp_v4_syn_recv_sock (net/ipv6/tcp_ipv6.c): the inner call is the witness. */
static __always_inline bool v4_inside_v6(const struct sk_buff *skb)
{
	return BPF_CORE_READ(skb, protocol) == bpf_htons(ETH_P_IP);
}

/* fexit. The return value comes from bpf_get_func_ret (5.17+), not from a positional
 * argument: the function gained a 7th parameter (opt_child_init) in recent kernels. */
SEC("fexit/tcp_v4_syn_recv_sock")
int BPF_PROG(fexit_syn_recv_v4, const struct sock *sk, struct sk_buff *skb, struct request_sock *req)
{
	__u64 ret = 0;
	if (bpf_get_func_ret(ctx, &ret) == 0 && ret == 0)
		witness(sk, req, false, bpf_get_socket_cookie((void *)sk), 0);
	return 0;
}

SEC("fexit/tcp_v6_syn_recv_sock")
int BPF_PROG(fexit_syn_recv_v6, const struct sock *sk, struct sk_buff *skb, struct request_sock *req)
{
	__u64 ret = 0;
	if (bpf_get_func_ret(ctx, &ret) == 0 && ret == 0 && !v4_inside_v6(skb))
		witness(sk, req, true, bpf_get_socket_cookie((void *)sk), 0);
	return 0;
}

SEC("fentry/cookie_v4_check")
int BPF_PROG(fentry_cookie_v4)
{
	cookie_enter();
	return 0;
}

SEC("fexit/cookie_v4_check")
int BPF_PROG(fexit_cookie_v4)
{
	cookie_exit();
	return 0;
}

SEC("fentry/cookie_v6_check")
int BPF_PROG(fentry_cookie_v6)
{
	cookie_enter();
	return 0;
}

SEC("fexit/cookie_v6_check")
int BPF_PROG(fexit_cookie_v6)
{
	cookie_exit();
	return 0;
}

/* ---- the witness from the drop reason (tracepoint skb:kfree_skb, 6.11+ for rx_sk) ----
 *
 * For kernels where neither fexit nor kprobes can be used. The final ACK of a handshake
 * dropped on a full accept queue is freed with a reason and the listener as rx_sk:
 * SKB_DROP_REASON_NO_SOCKET when cookie_v4_check/cookie_v6_check returned NULL (6.9+:
 * tcp_v4_do_rcv/tcp_v6_do_rcv), SKB_DROP_REASON_TCP_LISTEN_OVERFLOW when tcp_check_req did
 * (6.15+). The 4-tuple comes from the packet's IP and TCP headers. NO_SOCKET with a listener
 * is also what other failures inside the cookie check give (no memory, no route): the
 * queue-full test tells them apart, as on the other hooks.
 */
SEC("tp_btf/kfree_skb")
int BPF_PROG(on_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason, struct sock *rx_sk)
{
	__u32 flags = HO_DROP_KFREE_SKB;
	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NO_SOCKET)) {
		flags |= HO_DROP_COOKIE_PATH;
	} else if (!bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_TCP_LISTEN_OVERFLOW) ||
		   reason != bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_TCP_LISTEN_OVERFLOW)) {
		return 0;
	}
	if (!rx_sk || BPF_CORE_READ(rx_sk, __sk_common.skc_state) != TCP_LISTEN)
		return 0;
	__u32 ack = BPF_CORE_READ(rx_sk, sk_ack_backlog);
	__u32 max = BPF_CORE_READ(rx_sk, sk_max_ack_backlog);
	if (!(ack > max)) {
		count(HO_CNT_NULL_NOT_FULL);
		return 0;
	}

	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	__u8 ver = 0;
	__u8 tcp[14] = {};
	if (bpf_probe_read_kernel(&ver, 1, head + nh) || bpf_probe_read_kernel(tcp, sizeof(tcp), head + th))
		return 0;
	/* The final ACK of a handshake: ACK, no SYN, no RST (byte 13: CWR ECE URG ACK PSH RST SYN FIN). */
	if ((tcp[13] & 0x16) != 0x10)
		return 0;
	__u64 netns = BPF_CORE_READ(rx_sk, __sk_common.skc_net.net, net_cookie);
	if (!netns_wanted(netns))
		return 0;
	struct ho_drop_event *e = bpf_ringbuf_reserve(&drops, sizeof(*e), 0);
	if (!e) {
		count(HO_CNT_DROP_LOST);
		return 0;
	}
	e->kind = HO_KIND_DROP;
	e->ts_ns = bpf_ktime_get_boot_ns();
	e->netns_cookie = netns;
	e->listener_cookie = bpf_get_socket_cookie(rx_sk);
	e->family = BPF_CORE_READ(rx_sk, __sk_common.skc_family);
	e->_pad = 0;
	e->ack_backlog = ack;
	e->max_ack_backlog = max;
	e->rport = ((__u16)tcp[0] << 8) | tcp[1]; /* source: the client */
	e->lport = ((__u16)tcp[2] << 8) | tcp[3]; /* dest: the listener's port */
	if ((ver >> 4) == 6) {
		bpf_probe_read_kernel(e->raddr, 16, head + nh + 8);
		bpf_probe_read_kernel(e->laddr, 16, head + nh + 24);
	} else {
		__be32 saddr = 0, daddr = 0;
		bpf_probe_read_kernel(&saddr, 4, head + nh + 12);
		bpf_probe_read_kernel(&daddr, 4, head + nh + 16);
		v4_mapped(e->raddr, saddr);
		v4_mapped(e->laddr, daddr);
	}
	e->flags = flags;
	e->cpu = bpf_get_smp_processor_id();
	e->_pad2 = 0;
	count(HO_CNT_DROP_EMITTED);
	submit(&drops, e, sizeof(*e), wake_drops);
	return 0;
}

/* ---- kprobe fallback for the witness (kernels or configurations without fexit) ---- */

static __always_inline void kp_save(__u32 slot, struct sock *sk, struct sk_buff *skb, struct request_sock *req)
{
	struct syn_recv_args *a = bpf_map_lookup_elem(&kp_args, &slot);
	if (a) {
		a->sk = sk;
		a->skb = skb;
		a->req = req;
	}
}

static __always_inline void kp_ret(__u32 slot, void *ret)
{
	struct syn_recv_args *a = bpf_map_lookup_elem(&kp_args, &slot);
	if (!a || !a->sk)
		return;
	struct sock *sk = a->sk;
	struct sk_buff *skb = a->skb;
	struct request_sock *req = a->req;
	a->sk = NULL;
	if (ret)
		return;
	if (slot == 1 && v4_inside_v6(skb))
		return;
	/* No socket-cookie helper for kprobes: the listener's cookie if one was ever taken
	 * (sock_diag takes it), else 0. */
	__u64 listener_cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	witness(sk, req, slot == 1, listener_cookie, HO_DROP_KPROBE);
}

SEC("kprobe/tcp_v4_syn_recv_sock")
int BPF_KPROBE(kp_syn_recv_v4, struct sock *sk, struct sk_buff *skb, struct request_sock *req)
{
	kp_save(0, sk, skb, req);
	return 0;
}

SEC("kretprobe/tcp_v4_syn_recv_sock")
int BPF_KRETPROBE(kret_syn_recv_v4, void *ret)
{
	kp_ret(0, ret);
	return 0;
}

SEC("kprobe/tcp_v6_syn_recv_sock")
int BPF_KPROBE(kp_syn_recv_v6, struct sock *sk, struct sk_buff *skb, struct request_sock *req)
{
	kp_save(1, sk, skb, req);
	return 0;
}

SEC("kretprobe/tcp_v6_syn_recv_sock")
int BPF_KRETPROBE(kret_syn_recv_v6, void *ret)
{
	kp_ret(1, ret);
	return 0;
}

SEC("kprobe/cookie_v4_check")
int BPF_KPROBE(kp_cookie_v4)
{
	cookie_enter();
	return 0;
}

SEC("kretprobe/cookie_v4_check")
int BPF_KRETPROBE(kret_cookie_v4)
{
	cookie_exit();
	return 0;
}

SEC("kprobe/cookie_v6_check")
int BPF_KPROBE(kp_cookie_v6)
{
	cookie_enter();
	return 0;
}

SEC("kretprobe/cookie_v6_check")
int BPF_KRETPROBE(kret_cookie_v6)
{
	cookie_exit();
	return 0;
}
