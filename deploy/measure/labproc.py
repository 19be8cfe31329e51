#!/usr/bin/python3
"""Lab processes for measure-capabilities.sh (standard library only).

  labproc.py server PORT [--nondumpable]   listen on 127.0.0.1:PORT, accept
                                            one client, hold both sockets
  labproc.py client PORT                   connect to 127.0.0.1:PORT, hold

Each prints "ready" once its socket is in place and then sleeps until killed
(at most 600 s). --nondumpable calls prctl(PR_SET_DUMPABLE, 0) first, as
processes that changed uid or hold secrets do (sshd, gpg-agent): /proc/PID
of such a process belongs to root and ptrace access checks fail for other
uids.
"""
import ctypes
import socket
import sys
import time

PR_SET_DUMPABLE = 4


def main() -> None:
    role, port = sys.argv[1], int(sys.argv[2])
    if "--nondumpable" in sys.argv[3:]:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0)")
    held = []
    if role == "server":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(8)
        print("ready", flush=True)
        s.settimeout(600)
        conn, _ = s.accept()
        held += [s, conn]
    elif role == "client":
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        held.append(c)
        print("ready", flush=True)
    else:
        sys.exit(f"unknown role {role!r}")
    time.sleep(600)


if __name__ == "__main__":
    main()
