"""What a step is, and the context every step of one ITS shares.

A step declares what it ensures and how that is verified; `ensure` (install) may write, `verify`
(check, `helm test`) only reads. Both run under the ITS's deadline and the one retry policy: the API
through the context's clients (client.py), anything else (clusteradm, helm) through `Context.retry`.
The pipeline sets `Context.step` before it runs a step, so a failure, and every line a request logs,
is blamed on the step that was running.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from kubernetes.client import ApiClient

from . import deadline
from .client import Client
from .deadline import Deadline
from .log import EventLog
from .spec import HookConfig, ItsSpec

T = TypeVar("T")


@dataclass
class Space:
    """A reachable space: a client for it, its kubeconfig text for clusteradm and helm, and the uid of
    the ControlPlane it is the space of (what the hub records as its owner)."""

    client: Client
    kubeconfig: str
    controlplane_uid: str


@dataclass
class Context:
    hosting_api: ApiClient
    its: ItsSpec
    config: HookConfig
    deadline: Deadline
    log: EventLog
    step: str = ""
    reached: Space | None = None
    hosting: Client = field(init=False)

    def __post_init__(self) -> None:
        self.hosting = self.client(self.hosting_api)

    def client(self, api: ApiClient) -> Client:
        """A client bound to this ITS's deadline and log, its lines naming the running step."""
        return Client(api, self.deadline, self.log, lambda: self.step)

    @property
    def space(self) -> Space:
        """The space the `space` step reached; every later step works in it."""
        if self.reached is None:
            raise RuntimeError(f"step {self.step} runs before the space step reached the space")
        return self.reached

    def retry(self, fn: Callable[[], T], what: str, attempts: int | None = None) -> T:
        """fn (a command, not an API request: the clients retry those) under the one retry policy."""
        return deadline.call(fn, self.deadline, self.log, self.step, what, attempts)

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
