"""Forward TCP from the test's network namespace into a relay's namespace.

`python -m tests.mesh.nsforward NETNS TARGET_HOST TARGET_PORT`: listens on 127.0.0.1 (an
ephemeral port, printed on stdout) in the namespace it was started in, then enters
/run/netns/NETNS; connections it makes from then on are inside that namespace. So the test
reaches a relay's client API, bound to 127.0.0.1 inside its own namespace, while the
relay's addresses stay inside the namespaces.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(conn: socket.socket, host: str, port: int) -> None:
    try:
        upstream = socket.create_connection((host, port), timeout=10)
    except OSError:
        conn.close()
        return
    upstream.settimeout(None)
    threading.Thread(target=_pump, args=(conn, upstream), daemon=True).start()
    _pump(upstream, conn)
    conn.close()
    upstream.close()


def main() -> None:
    netns, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns failed")
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn, host, port), daemon=True).start()


if __name__ == "__main__":
    main()
