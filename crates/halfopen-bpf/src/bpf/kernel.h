/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kernel.h: the few kernel types halfopen's BPF programs read, written by hand for CO-RE
 * instead of a generated vmlinux.h.
 *
 * Every struct carries preserve_access_index: clang records each field access as a BTF
 * relocation, and libbpf fixes the offsets at load time against the running kernel's BTF
 * (/sys/kernel/btf/vmlinux). So only the fields read are declared, in any order, and the
 * layout here need not match any kernel. Field names and types are those of
 * include/net/sock.h (struct sock_common, struct sock), include/net/request_sock.h
 * (struct request_sock), include/net/inet_sock.h (struct inet_request_sock: ir_loc_addr and
 * friends are macros over __req_common), include/net/net_namespace.h (struct net),
 * include/linux/skbuff.h (struct sk_buff) and arch/x86/include/asm/ptrace.h (struct pt_regs),
 * checked against the BTF of kernel 6.18.
 */
#ifndef HALFOPEN_KERNEL_H
#define HALFOPEN_KERNEL_H

/* Tells bpf_tracing.h that struct pt_regs has the kernel's field names (di, si, ax, ...), as
 * with a generated vmlinux.h, not the UAPI ones (rdi, ...): the CO-RE relocations need the
 * kernel's names. */
#define __VMLINUX_H__

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

/* include/uapi/linux/bpf.h */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum {
	BPF_ANY = 0,
};
enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};
enum {
	BPF_RB_AVAIL_DATA = 0,
};

/* include/uapi/linux/in.h, socket.h, if_ether.h, include/net/tcp_states.h */
#define IPPROTO_TCP 6
#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7
#define TCP_LISTEN 10

#define __ho_core __attribute__((preserve_access_index))

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
} __ho_core;

struct net {
	__u64 net_cookie;
} __ho_core;

typedef struct {
	struct net *net;
} possible_net_t;

typedef struct {
	__s64 counter;
} atomic64_t;

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
	atomic64_t skc_cookie;
} __ho_core;

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
	__u32 sk_ack_backlog;
	__u32 sk_max_ack_backlog;
} __ho_core;

struct request_sock {
	struct sock_common __req_common;
	/* Since 6.7 (set on requests rebuilt from a SYN cookie); absent before: checked with
	 * bpf_core_field_exists. */
	__u8 syncookie : 1;
} __ho_core;

struct inet_request_sock {
	struct request_sock req;
} __ho_core;

struct sk_buff {
	__be16 protocol;
	unsigned char *head;
	__u16 network_header;   /* offsets from head */
	__u16 transport_header;
} __ho_core;

/* include/net/dropreason-core.h. The values here are placeholders: the programs read them
 * with bpf_core_enum_value, which relocates them against the running kernel. */
enum skb_drop_reason {
	SKB_DROP_REASON_NO_SOCKET = 3,            /* 6.9+ inside the cookie check */
	SKB_DROP_REASON_TCP_LISTEN_OVERFLOW = 40, /* 6.15+ */
};

/* x86-64 (the only architecture this header is written for; bpf_tracing.h reads the
 * argument and return registers through it for the kprobe fallback). */
struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs,
		flags, sp, ss;
} __ho_core;

#endif
