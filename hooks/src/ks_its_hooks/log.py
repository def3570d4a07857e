"""One event per line, logfmt, with the ITS and the step on every line."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

_lock = threading.Lock()


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\n\t'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_event(level: str, its: str, step: str, msg: str, fields: dict[str, object], now: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    parts = [f"time={stamp}", f"level={level}", f"its={_quote(its)}", f"step={step}", f"msg={_quote(msg)}"]
    parts += [f"{key}={_quote(value)}" for key, value in fields.items()]
    return " ".join(parts)


class EventLog:
    """Logger bound to one ITS. Never pass it credentials: fields are printed as they are."""

    def __init__(self, its: str, stream: TextIO | None = None) -> None:
        self.its = its
        self._stream = stream

    def _write(self, level: str, step: str, msg: str, fields: dict[str, object]) -> None:
        line = format_event(level, self.its, step, msg, fields, time.time())
        with _lock:
            stream = self._stream or sys.stderr
            stream.write(line + "\n")
            stream.flush()

    def info(self, step: str, msg: str, **fields: object) -> None:
        self._write("info", step, msg, fields)

    def warn(self, step: str, msg: str, **fields: object) -> None:
        self._write("warn", step, msg, fields)

    def error(self, step: str, msg: str, **fields: object) -> None:
        self._write("error", step, msg, fields)


def last_line(line: str) -> None:
    """Write line to stderr as the process's last: the lock stays taken, so no other thread's event
    follows it. For a caller about to end the process."""
    _lock.acquire(timeout=1)  # a writer holds it only for one line
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
