"""The external commands the hook runs (clusteradm, helm): their inputs in private files, their
output redacted, and their failures in the error taxonomy."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from .errors import DeadlineExceeded, PermanentError
from .step import Context

_SECRET_PATTERNS = (
    re.compile(r"(--hub-token[ =])\S+"),
    re.compile(r"(token[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._-]{16,}", re.IGNORECASE),
    re.compile(r"(eyJ)[A-Za-z0-9._-]{20,}"),
    re.compile(r"(password[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+", re.IGNORECASE),
    re.compile(r"(\"auth\"\s*:\s*\")[^\"]+"),
    re.compile(r"(://[^/\s:@]+:)[^/\s@]+(@)"),
)


def redact(text: str) -> str:
    """Remove bootstrap tokens, JWTs, passwords and credentials in URLs from a command's output."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1<redacted>\2" if pattern.groups == 2 else r"\1<redacted>", text)
    return text


@contextmanager
def private_files(files: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Each file (name -> text) in a directory only this process can read, all removed afterwards.
    Yields name -> path."""
    directory = tempfile.mkdtemp(prefix="ks-its-")  # mode 0700
    paths = {name: os.path.join(directory, name) for name in files}
    try:
        for name, text in files.items():
            fd = os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        yield paths
    finally:
        # The files, and whatever a command left beside them (helm's cache and config).
        for parent, dirs, names in os.walk(directory, topdown=False):
            for name in names:
                os.unlink(os.path.join(parent, name))
            for name in dirs:
                os.rmdir(os.path.join(parent, name))
        os.rmdir(directory)


def run(ctx: Context, command: list[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command within the ITS's deadline. A missing command is permanent; running out of time
    is the deadline. The caller judges the exit code."""
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **env} if env else None,
            timeout=max(1.0, ctx.deadline.remaining()),
        )
    except FileNotFoundError as err:
        raise PermanentError(f"{command[0]} is not installed in the hook image") from err
    except subprocess.TimeoutExpired as err:
        raise DeadlineExceeded(
            f"timed out after {ctx.deadline.elapsed():.0f}s: {command[0]} {command[1]} did not finish"
        ) from err


def output_tail(result: subprocess.CompletedProcess[str], limit: int = 400) -> str:
    """The end of what a failed command said, redacted, on one line."""
    text = redact((result.stderr or result.stdout).strip())
    return " ".join(text.split())[-limit:]
