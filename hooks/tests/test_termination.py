"""The termination message the hook leaves in its pod's status, and whose pod it is."""

from __future__ import annotations

from pathlib import Path

from ks_its_hooks import termination

ENV = {"POD_NAMESPACE": "kubeflex-system", "POD_NAME": "ks-its-hook-0-abcde", "ITS_HOOK_JOB": "ks-its-hook"}


def test_install_reports_for_its_job_and_check_for_its_pod_only() -> None:
    assert termination.identity("install", ENV) == termination.PodIdentity(
        "kubeflex-system", "ks-its-hook", "/dev/termination-log"
    )
    assert termination.identity("check", ENV) == termination.PodIdentity("kubeflex-system", None, "/dev/termination-log")


def test_outside_a_pod_of_the_chart_there_is_no_identity() -> None:
    assert termination.identity("install", {}) is None
    assert termination.identity("check", {k: v for k, v in ENV.items() if k != "POD_NAMESPACE"}) is None


def test_the_termination_message_keeps_whole_lines_within_what_kubernetes_keeps() -> None:
    lines = [f"ITS its{n}: step ocm-hub failed: " + "x" * 200 for n in range(40)]
    message = termination.message(lines)
    assert len(message.encode()) <= termination.MAX_BYTES
    kept = message.splitlines()
    assert kept[:-1] == lines[: len(kept) - 1]
    assert kept[-1] == f"... and {40 - (len(kept) - 1)} more: see the pod's logs"
    assert termination.message(["one", "two"]) == "one\ntwo\n"


def test_a_pod_that_dies_early_still_names_what_it_left_undone() -> None:
    lines = termination.unfinished(("its1", "its2"))
    assert lines[0].startswith("not finished: its1, its2. ")
    assert "raise hook.resources.limits.memory" in lines[0]


def test_the_message_is_written_only_where_the_kubelet_mounted_the_file(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    me = termination.PodIdentity("ns", "job", str(log))
    termination.write(me, ["ready: its1"])
    assert not log.exists()
    log.touch()
    termination.write(me, ["ready: its1"])
    assert log.read_text() == "ready: its1\n"
