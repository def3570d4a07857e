"""One overall deadline per ITS, and the tenacity policy every API call shares."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

from .errors import describe, is_transient
from .log import EventLog

T = TypeVar("T")


class Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.at = self.started + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self.started

    def expired(self) -> bool:
        return self.remaining() <= 0


class DeadlineExceeded(Exception):
    pass


def call(fn: Callable[[], T], deadline: Deadline, log: EventLog, step: str, what: str) -> T:
    """Run fn, retrying transient API failures with jittered backoff until the deadline."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warn(step, f"retrying {what}", attempt=state.attempt_number, cause=describe(exc) if exc else "")

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=tenacity.wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.5),
        stop=tenacity.stop_before_delay(max(deadline.remaining(), 0.01)),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)
