"""Ports for servers of the sandbox: free inside its network namespace and on the machine's loopback,
so that a relay can offer each server on the machine at the same port (see relay.py)."""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
# Set by the supervisor, which runs in the sandbox's namespace: an open file of the machine's.
machine_netns_fd: int | None = None


def _bindable(port: int) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        return int(sock.getsockname()[1])


def on_machine(fn: Callable[[], T]) -> T:
    """Run fn in a thread of its own that moved to the machine's network namespace (setns moves only
    the calling thread), so the sockets it opens are the machine's."""
    if machine_netns_fd is None:
        return fn()
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            if ctypes.CDLL(None, use_errno=True).setns(machine_netns_fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            result.append(fn())
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=run, name="on-machine")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def free_on_machine(port: int) -> bool:
    try:
        on_machine(lambda: _bindable(port))
    except OSError:
        return False
    return True


def free_port() -> int:
    """A port free here and, from inside the sandbox, on the machine too."""
    for _ in range(50):
        port = on_machine(lambda: _bindable(0))
        try:
            return _bindable(port)
        except OSError:
            continue
    raise RuntimeError("no port is free both on the machine and in the sandbox's namespace")
