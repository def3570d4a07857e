"""The error taxonomy: transient or permanent, and the one line a failure becomes."""

from __future__ import annotations

import json
import ssl

import pytest
import urllib3
from ks_its_hooks.errors import (
    DeadlineExceeded,
    Failure,
    PermanentError,
    TransientError,
    cause,
    failure,
    is_permanent,
    is_transient,
)
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException


def api_error(status: int, reason: str = "", body: dict[str, str] | None = None) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps(body) if body else None
    return exc


@pytest.mark.parametrize(("exc", "transient"), [
    (api_error(503), True),
    (api_error(500), True),
    (api_error(429), True),
    (api_error(409, body={"reason": "Conflict"}), True),
    (api_error(0), True),
    (urllib3.exceptions.MaxRetryError(None, "/", ConnectionRefusedError()), True),
    (urllib3.exceptions.ProtocolError("reset"), True),
    (ConnectionResetError(), True),
    (TimeoutError(), True),
    (TransientError("clusteradm init exited 1"), True),
    (api_error(409, body={"reason": "AlreadyExists"}), False),
    (api_error(403), False),
    (api_error(404), False),
    (PermanentError("no"), False),
    (ConfigException("no"), False),
    (ssl.SSLCertVerificationError("bad certificate"), False),
    (ValueError("x"), False),
    (DeadlineExceeded("timed out"), False),
])
def test_transient_errors_are_told_from_permanent_ones(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_a_deadline_is_neither_transient_nor_permanent() -> None:
    # Another run gets a new deadline: a Job retry may get past it, so it is not permanent.
    assert not is_permanent(DeadlineExceeded("timed out"))
    assert not is_permanent(api_error(503))
    assert is_permanent(PermanentError("no"))
    assert is_permanent(api_error(403, "Forbidden"))


@pytest.mark.parametrize(("exc", "text"), [
    (PermanentError("bootstrap Secret ns/b not found"), "bootstrap Secret ns/b not found"),
    (TransientError("clusteradm init exited 1: boom"), "clusteradm init exited 1: boom"),
    (DeadlineExceeded("timed out after 9s waiting for x: y"), "timed out after 9s waiting for x: y"),
    (api_error(403, "Forbidden", {"message": "token abc is secret"}), "API error 403 Forbidden"),
    (urllib3.exceptions.MaxRetryError(None, "/", ConnectionRefusedError()), "cannot connect: ConnectionRefusedError"),
    (KeyError("status"), "KeyError: 'status'"),
    (RuntimeError(), "RuntimeError"),
    (ValueError("first line\nsecond line"), "ValueError: first line"),
])
def test_the_cause_says_what_went_wrong_and_never_a_response_body(exc: BaseException, text: str) -> None:
    assert cause(exc) == text


def test_a_failure_is_one_line_naming_the_its_and_the_step() -> None:
    failed = failure("its1", "ocm-hub", PermanentError("the space has no ClusterManager cluster-manager"))
    assert failed == Failure("its1", "ocm-hub", "the space has no ClusterManager cluster-manager", permanent=True)
    assert failed.line == "ITS its1: step ocm-hub failed: the space has no ClusterManager cluster-manager"
    assert not failure("its1", "space", DeadlineExceeded("timed out")).permanent
