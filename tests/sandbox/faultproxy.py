"""A TCP proxy on 127.0.0.1 that can refuse service for a while: a flaky API server, seen from a client.

While failing, it accepts connections and resets them at once (the client sees connection resets,
like an API server that is restarting); otherwise it forwards bytes both ways (TLS passes through).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

from .servers import free_port


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.failing_until = 0.0
        self.resets = 0
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        threading.Thread(target=self._serve, daemon=True).start()

    def fail_for(self, seconds: float) -> None:
        self.failing_until = time.monotonic() + seconds

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            if time.monotonic() < self.failing_until:
                self.resets += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                conn.close()
                continue
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    for sock in (src, dst):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
