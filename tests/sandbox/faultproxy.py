"""A TCP proxy that can refuse service for a while: a flaky API server, seen from a client.

While failing, it accepts connections and resets them at once (the client sees connection resets,
like an API server that is restarting); otherwise it forwards bytes both ways (TLS passes through).
The failing time starts with the first connection, so a client that is slow to start (a pod on a
loaded node) meets it all the same.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


class FaultProxy:
    def __init__(self, target_port: int, listen: str = "127.0.0.1", target_host: str = "127.0.0.1") -> None:
        self.target_port = target_port
        self.target_host = target_host
        self.fail_seconds = 0.0
        self.failing_until: float | None = None  # set by the first connection
        self.resets = 0
        self._stop = threading.Event()
        self._server = socket.create_server((listen, 0))
        self.port = int(self._server.getsockname()[1])
        self._server.settimeout(0.2)
        threading.Thread(target=self._serve, daemon=True).start()

    def fail_for(self, seconds: float) -> None:
        """Reset every connection for `seconds` from the first one on."""
        self.fail_seconds = seconds

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
            if self.failing_until is None:
                self.failing_until = time.monotonic() + self.fail_seconds
            if time.monotonic() < self.failing_until:
                self.resets += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            try:
                upstream = socket.create_connection((self.target_host, self.target_port))
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


class FaultProxyProcess:
    """A FaultProxy inside the sandbox's network namespace, on the node's address, where pods reach it:
    `python -m tests.sandbox.faultproxy` run there. Counts its resets when it stops."""

    def __init__(self, sandbox: Any, target: str, fail_for: float) -> None:
        self.argv = [
            "nsenter",
            f"--net=/run/netns/{sandbox.state['netns']}",
            sys.executable,
            "-m",
            "tests.sandbox.faultproxy",
            "--listen",
            sandbox.state["node_ip"],
            "--target",
            target,
            "--fail-for",
            str(fail_for),
        ]
        self.port = 0
        self.resets = 0
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> FaultProxyProcess:
        self._process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline().strip().removeprefix("port="))
        return self

    def __exit__(self, *_: object) -> None:
        assert self._process is not None and self._process.stdout is not None
        self._process.send_signal(signal.SIGTERM)
        output: str = self._process.communicate(timeout=30)[0]
        self.resets = int(output.strip().rsplit("resets=", 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.faultproxy")
    parser.add_argument("--listen", required=True, help="address to listen on (a free port is chosen)")
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--fail-for", type=float, default=0, help="seconds to reset connections from the first on")
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with FaultProxy(int(port), listen=args.listen, target_host=host) as proxy:
        proxy.fail_for(args.fail_for)
        print(f"port={proxy.port}", flush=True)
        stopped.wait()
        print(f"resets={proxy.resets}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
