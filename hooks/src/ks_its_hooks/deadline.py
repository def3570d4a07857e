"""One deadline per ITS, and the one retry policy every call of every step goes through."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

from .errors import cause, is_transient, retry_after
from .log import EventLog

T = TypeVar("T")

# Backoff between tries: 0.1 s doubling to at most 5 s, with jitter so that many ITSes do not
# retry against one API server in lockstep.
BACKOFF = tenacity.wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.5)


def pause(state: tenacity.RetryCallState) -> float:
    """The backoff, or longer when the server said how long to wait (Retry-After on a 429 or 503)."""
    exc = state.outcome.exception() if state.outcome else None
    return max(BACKOFF(state), retry_after(exc) if exc else 0.0)


class Deadline:
    """`seconds` from `started` (a reading of `clock`; now by default): a run may have begun before
    this process, in an earlier Job of the same run."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic, started: float | None = None) -> None:
        self._clock = clock
        self.seconds = seconds
        self.started = clock() if started is None else started
        self.at = self.started + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self.started

    def expired(self) -> bool:
        return self.remaining() <= 0


def call(fn: Callable[[], T], deadline: Deadline, log: EventLog, step: str, what: str, attempts: int | None = None) -> T:
    """Run fn; retry what errors.is_transient calls transient, until the deadline (or `attempts` tries).
    The last error is raised as it is, for errors.failure to classify."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warn(step, f"retrying {what}", attempt=state.attempt_number, cause=cause(exc) if exc else "")

    stop: tenacity.stop.stop_base = tenacity.stop_before_delay(max(deadline.remaining(), 0.01))
    if attempts is not None:
        stop = stop | tenacity.stop_after_attempt(attempts)
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=pause,
        stop=stop,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)
