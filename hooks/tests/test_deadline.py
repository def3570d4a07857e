"""The deadline, and the one retry policy: transient errors are retried until the deadline or the
attempts run out, anything else is raised at once."""

from __future__ import annotations

import io
import time

import pytest
from ks_its_hooks.deadline import Deadline, call
from ks_its_hooks.errors import PermanentError, TransientError
from ks_its_hooks.log import EventLog
from kubernetes.client.exceptions import ApiException


def test_deadline_counts_down_on_its_clock() -> None:
    now = [100.0]
    deadline = Deadline(10, clock=lambda: now[0])
    now[0] = 104.0
    assert deadline.remaining() == 6.0 and deadline.elapsed() == 4.0 and not deadline.expired()
    now[0] = 111.0
    assert deadline.expired() and deadline.remaining() == 0.0


def flaky(failures: list[BaseException]) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "done"

    return calls, fn


def test_transient_errors_are_retried_and_each_retry_is_logged() -> None:
    calls, fn = flaky([ApiException(status=503), ConnectionResetError()])
    log = io.StringIO()
    assert call(fn, Deadline(30), EventLog("its1", log), "space", "reading x") == "done"  # type: ignore[arg-type]
    assert len(calls) == 3
    assert log.getvalue().count('msg="retrying reading x"') == 2
    assert 'cause="API error 503"' in log.getvalue()


def test_a_permanent_error_is_raised_at_the_first_try() -> None:
    calls, fn = flaky([ApiException(status=403, reason="Forbidden")])
    with pytest.raises(ApiException):
        call(fn, Deadline(30), EventLog("its1", io.StringIO()), "space", "reading x")  # type: ignore[arg-type]
    calls2, fn2 = flaky([PermanentError("no")])
    with pytest.raises(PermanentError):
        call(fn2, Deadline(30), EventLog("its1", io.StringIO()), "space", "reading x")  # type: ignore[arg-type]
    assert len(calls) == 1 and len(calls2) == 1


def test_attempts_bound_the_retries_of_a_transient_error() -> None:
    calls, fn = flaky([TransientError(f"exited {n}") for n in range(10)])
    with pytest.raises(TransientError, match="exited 2"):
        call(
            fn,
            Deadline(60),
            EventLog("its1", io.StringIO()),
            "ocm-hub",
            "clusteradm init",  # type: ignore[arg-type]
            attempts=3,
        )
    assert len(calls) == 3


def test_retries_stop_at_the_deadline() -> None:
    calls, fn = flaky([ApiException(status=503) for _ in range(1000)])
    deadline = Deadline(2)
    with pytest.raises(ApiException):
        call(fn, deadline, EventLog("its1", io.StringIO()), "space", "reading x")  # type: ignore[arg-type]
    # The first backoff is at most 0.6 s, so it retried; doubling waits allow only a few tries in 2 s,
    # and without the deadline it would have gone on through all 1000 failures.
    assert 2 <= len(calls) < 50


def test_a_deadline_that_began_earlier_has_only_the_rest_left() -> None:
    now = [100.0]
    deadline = Deadline(10, clock=lambda: now[0], started=96.0)
    assert deadline.remaining() == 6.0 and deadline.elapsed() == 4.0
    now[0] = 106.0
    assert deadline.expired()


def test_a_server_that_says_how_long_to_wait_is_waited_for() -> None:
    """429 and 503 with Retry-After: at least that long before the next try (the backoff alone is 0.1 s)."""
    for status in (429, 503):
        busy = ApiException(status=status)
        busy.headers = {"Retry-After": "1"}
        calls, fn = flaky([busy])
        started = time.monotonic()
        assert call(fn, Deadline(30), EventLog("its1", io.StringIO()), "ocm-hub", "reading x") == "done"  # type: ignore[arg-type]
        assert len(calls) == 2 and time.monotonic() - started >= 1.0
