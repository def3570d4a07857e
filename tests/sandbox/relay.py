"""Relays from the machine's loopback into the sandbox's network namespace, with socat.

A server in the namespace listening on port P is reached from the machine at 127.0.0.1:P: socat on
the machine accepts there and hands each connection through a unix socket (files cross namespaces)
to a socat in the namespace, which connects to 127.0.0.1:P there. The same address thus works on
both sides, so one kubeconfig serves kubectl on the machine and processes in the namespace.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import ports
from .host import NODE_IP
from .servers import Process


class Relays:
    def __init__(self, root: Path, host_netns_fd: int) -> None:
        """host_netns_fd: an open file of the machine's network namespace (this process lives in the sandbox's)."""
        self.root = root
        self.host_netns_fd = host_netns_fd
        self.processes: list[Process] = []
        self.ports: list[int] = []

    def add(self, port: int, target: str = "127.0.0.1", machine_port: int | None = None, timeout: float = 10) -> None:
        """Relay the machine's 127.0.0.1:machine_port (default: the same port) to target:port in the
        namespace."""
        machine_port = machine_port or port
        if machine_port in self.ports:
            return
        sock = self.root / "relays" / f"{machine_port}.sock"
        sock.parent.mkdir(parents=True, exist_ok=True)
        inside = Process(
            f"relay {machine_port} (namespace side)",
            ["socat", f"UNIX-LISTEN:{sock},fork,unlink-early,mode=600", f"TCP:{target}:{port}"],
            self.root / "logs" / "relays.log",
        )
        inside.start()
        host_ns = f"/proc/{os.getpid()}/fd/{self.host_netns_fd}"
        outside = Process(
            f"relay {machine_port} (machine side)",
            [
                "nsenter",
                f"--net={host_ns}",
                "socat",
                f"TCP-LISTEN:{machine_port},bind=127.0.0.1,fork,reuseaddr",
                f"UNIX-CONNECT:{sock}",
            ],
            self.root / "logs" / "relays.log",
        )
        outside.start(pass_fds=(self.host_netns_fd,))
        self.processes += [inside, outside]
        self.ports.append(machine_port)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for process in (inside, outside):
                if not process.alive():
                    raise process.fail("exited")
            if sock.exists() and _listening_on_machine(machine_port):
                return
            time.sleep(0.05)
        raise outside.fail(f"did not listen on 127.0.0.1:{machine_port} of the machine within {timeout:.0f}s")

    def add_node_port(self, node_port: int) -> int:
        """A NodePort (it listens on the node's address only) on the machine: at the same port when it
        is free there, else at a free one. The machine's port is recorded in relays/nodeport-<port>."""
        record = self.root / "relays" / f"nodeport-{node_port}"
        if record.exists():
            return int(record.read_text())
        machine_port = node_port if ports.free_on_machine(node_port) else ports.free_port()
        self.add(node_port, NODE_IP, machine_port)
        record.write_text(str(machine_port))
        return machine_port

    def stop(self) -> None:
        for process in self.processes:
            process.stop(timeout=2)


def _listening_on_machine(port: int) -> bool:
    return not ports.free_on_machine(port)
