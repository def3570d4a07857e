"""Condition helpers the waits use (the waits themselves run against a real API server in tests/)."""

from __future__ import annotations

from ks_its_hooks.readiness import condition_reason, condition_status


def test_conditions_are_read_by_type() -> None:
    obj = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "Unavailable", "message": "m"},
                {"type": "Synced", "status": "True"},
            ]
        }
    }
    assert condition_status(obj, "Ready") == "False"
    assert condition_reason(obj, "Ready") == "Unavailable m"
    assert condition_status(obj, "Synced") == "True" and condition_reason(obj, "Synced") == ""
    assert condition_status(obj, "Absent") is None
    assert condition_status({}, "Ready") is None and condition_status({"status": None}, "Ready") is None
