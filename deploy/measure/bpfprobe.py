#!/usr/bin/python3
"""What the coming eBPF source needs, step by step, through the raw bpf(2)
syscall (standard library only, x86_64 and aarch64):

  1. BPF_MAP_CREATE of a BPF_MAP_TYPE_RINGBUF (the event channel)
  2. BPF_PROG_LOAD of a BPF_PROG_TYPE_RAW_TRACEPOINT program ("r0 = 0; exit")
  3. BPF_RAW_TRACEPOINT_OPEN on sock:inet_sock_set_state (attach)

Prints one line per step, "STEP ok" or "STEP EPERM ...", and exits 0 only
if all three work. Everything is closed on exit (nothing stays attached).
Constants from include/uapi/linux/bpf.h.
"""
import ctypes
import errno
import os
import platform
import struct
import sys

SYS_BPF = {"x86_64": 321, "aarch64": 280}[platform.machine()]
BPF_MAP_CREATE, BPF_PROG_LOAD, BPF_RAW_TRACEPOINT_OPEN = 0, 5, 17
BPF_MAP_TYPE_RINGBUF = 27
BPF_PROG_TYPE_RAW_TRACEPOINT = 17
ATTR_SIZE = 128

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr.ljust(ATTR_SIZE, b"\0"), ATTR_SIZE)
    fd = libc.syscall(SYS_BPF, cmd, buf, ATTR_SIZE)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return fd


def step(name: str, fn):
    try:
        fd = fn()
        print(f"{name} ok")
        return fd
    except OSError as e:
        print(f"{name} {errno.errorcode.get(e.errno, e.errno)} {e.strerror}")
        return None


def main() -> int:
    # ring buffer: map_type, key_size, value_size, max_entries (a power of 2 of pages)
    ring = step("ringbuf_map_create", lambda: bpf(BPF_MAP_CREATE, struct.pack("=IIII", BPF_MAP_TYPE_RINGBUF, 0, 0, 1 << 16)))
    insns = struct.pack("=BBhi", 0xB7, 0, 0, 0) + struct.pack("=BBhi", 0x95, 0, 0, 0)  # mov64 r0, 0; exit
    insns_buf = ctypes.create_string_buffer(insns, len(insns))
    license_buf = ctypes.create_string_buffer(b"GPL")
    prog_attr = struct.pack(
        "=IIQQIIQII",
        BPF_PROG_TYPE_RAW_TRACEPOINT,
        len(insns) // 8,
        ctypes.addressof(insns_buf),
        ctypes.addressof(license_buf),
        0, 0, 0, 0, 0,
    )
    prog = step("raw_tracepoint_prog_load", lambda: bpf(BPF_PROG_LOAD, prog_attr))
    link = None
    if prog is not None:
        name_buf = ctypes.create_string_buffer(b"inet_sock_set_state")
        link = step(
            "raw_tracepoint_attach",
            lambda: bpf(BPF_RAW_TRACEPOINT_OPEN, struct.pack("=QI", ctypes.addressof(name_buf), prog)),
        )
    else:
        print("raw_tracepoint_attach skipped (no program)")
    for fd in (link, prog, ring):
        if fd is not None:
            os.close(fd)
    return 0 if None not in (ring, prog, link) else 1


if __name__ == "__main__":
    sys.exit(main())
