"""What a step is, and the context every step of one ITS shares.

A step declares what it ensures and how that is verified; `ensure` (install) may write, `verify`
(check, `helm test`) only reads. Both run under the ITS's deadline and the one retry policy, through
`Context.call` and `Context.wait_until`. The pipeline sets `Context.step` before it runs a step, so a
failure is always blamed on the step that was running.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client

from . import deadline, readiness
from .deadline import Deadline
from .log import EventLog
from .spec import HookConfig, ItsSpec

T = TypeVar("T")


@dataclass
class Space:
    """A reachable space: a client for it, its kubeconfig text for clusteradm, and the uid of the
    ControlPlane it is the space of (what the hub records as its owner)."""

    api: client.ApiClient
    kubeconfig: str
    controlplane_uid: str


@dataclass
class Context:
    hosting: client.ApiClient
    its: ItsSpec
    config: HookConfig
    deadline: Deadline
    log: EventLog
    step: str = ""
    reached: Space | None = None

    @property
    def space(self) -> Space:
        """The space the `space` step reached; every later step works in it."""
        if self.reached is None:
            raise RuntimeError(f"step {self.step} runs before the space step reached the space")
        return self.reached

    def call(self, fn: Callable[[], T], what: str, attempts: int | None = None) -> T:
        return deadline.call(fn, self.deadline, self.log, self.step, what, attempts)

    def wait_until(self, list_fn: Callable[..., Any], check: readiness.Check, what: str,
                   field_selector: str | None = None,
                   explain: Callable[[], str | None] | None = None) -> dict[str, dict[str, Any]]:
        return readiness.wait_until(list_fn, check, self.deadline, self.log, self.step, what, field_selector, explain)

    def info(self, msg: str, **fields: object) -> None:
        self.log.info(self.step, msg, **fields)

    def warn(self, msg: str, **fields: object) -> None:
        self.log.warn(self.step, msg, **fields)


@dataclass(frozen=True)
class Step:
    name: str
    ensures: str
    verified_by: str
    ensure: Callable[[Context], None]
    verify: Callable[[Context], None]
