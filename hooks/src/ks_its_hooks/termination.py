"""The pod's termination message (its status, `kubectl describe pod`, `kubectl get pod -o`): each failed
ITS's line, or which ITSes it handled. Written first with the ITSes the pod has not finished, before
anything heavy is imported, so a pod killed on the way (OOMKilled) still says what it left undone.
Standard library only, for that reason. And the pod's end when it is deleted (SIGTERM)."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

from .log import last_line

# Kubernetes keeps at most this many bytes of a termination message.
MAX_BYTES = 4096


@dataclass(frozen=True)
class PodIdentity:
    """Where this hook runs, as the chart tells it (env); None outside a pod of the chart."""

    namespace: str
    job: str | None  # the pod's Job; None for the helm test pod
    termination_log: str


def identity(command: str, env: Mapping[str, str] | None = None) -> PodIdentity | None:
    env = os.environ if env is None else env
    namespace = env.get("POD_NAMESPACE")
    if not namespace:
        return None
    # The helm test pod belongs to no Job.
    return PodIdentity(
        namespace=namespace,
        job=env.get("ITS_HOOK_JOB") if command != "check" else None,
        termination_log=env.get("ITS_TERMINATION_LOG", "/dev/termination-log"),
    )


def message(lines: Sequence[str]) -> str:
    """The lines, cut to what Kubernetes keeps, saying how many were left out."""
    text = ""
    for index, line in enumerate(lines):
        rest = len(lines) - index - 1
        candidate = text + line + "\n"
        footer = f"... and {rest} more: see the pod's logs\n" if rest else ""
        if len((candidate + footer).encode()) > MAX_BYTES:
            return text + f"... and {rest + 1} more: see the pod's logs\n"
        text = candidate
    return text


def unfinished(itses: Sequence[str]) -> list[str]:
    names = ", ".join(itses)
    return [
        f"not finished: {names}. This pod ended before it finished them; if it was OOMKilled, raise "
        "hook.resources.limits.memory, or hook.maxParallelPods so that each pod has fewer ITSes."
    ]


def write(me: PodIdentity, lines: Sequence[str]) -> None:
    # The kubelet mounts this file for every container; elsewhere it does not exist.
    if os.path.exists(me.termination_log):
        with open(me.termination_log, "w", encoding="utf-8") as handle:
            handle.write(message(lines))


# A SIGTERM received before the hook knows what it would leave undone (see hold_sigterm).
_held: list[int] = []


def hold_sigterm() -> None:
    """From the hook's first statement: PID 1 ignores a SIGTERM it has no handler for, and a pod
    deleted while the hook starts would then run on to the kubelet's SIGKILL. The signal is kept
    until end_on_sigterm, which ends the hook at once for it."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: _held.append(signum))


def end_on_sigterm(command: str, itses: Sequence[str], me: PodIdentity | None) -> None:
    """A deleted pod (helm --atomic undoing an install, a deleted Job, a drained node) gets SIGTERM.
    The hook is its container's PID 1, which the kernel shields from signals it has no handler for:
    without this it would go on until the kubelet kills it when the grace period (30 s) is over.
    It ends at once instead, saying what it leaves undone; its clusteradm and helm processes end with
    it (the container's PID 1 gone, the kernel kills the rest)."""
    line = (
        f"ks-its-hook: {command} stopped by SIGTERM (pod deleted) before it finished: "
        f"{', '.join(itses)}; the next hook run (helm upgrade) takes them up again"
    )

    def end(signum: int, _frame: FrameType | None) -> None:
        try:
            last_line(line)
            if me:
                write(me, [line])
        finally:
            os._exit(128 + signum)

    signal.signal(signal.SIGTERM, end)
    if _held:
        end(_held[0], None)
