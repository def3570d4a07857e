"""What the hook does as a pod besides its steps. Reporting failures as Events on the Job and the
cleanup hook talk to the API server: the integration suite checks them on the sandbox
(tests/test_failure_reports.py, tests/test_lifecycle.py); here, what needs none."""

from __future__ import annotations

import json

import pytest
from ks_its_hooks.pod import best_effort
from kubernetes.client.exceptions import ApiException


def test_best_effort_returns_what_the_call_returns() -> None:
    assert best_effort("add", lambda a, b: a + b, 2, 3) == 5


def test_best_effort_reports_a_failure_in_one_line_without_the_response_body(capsys: pytest.CaptureFixture[str]) -> None:
    denied = ApiException(status=403, reason="Forbidden")
    denied.body = json.dumps({"message": "token sha256~secretvalue is not allowed"})

    def create_event() -> None:
        raise denied

    assert best_effort("record the failures on the hook Job", create_event) is None
    err = capsys.readouterr().err
    assert err == "ks-its-hook: could not record the failures on the hook Job: API error 403 Forbidden\n"
