"""The command line: configuration errors, exit codes, the deadline override, one line per failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from factories import its_json, its_json_item
from ks_its_hooks import cli, pipeline, pod
from ks_its_hooks.errors import Failure


def write_config(tmp_path: Path, itses: list[str]) -> Path:
    config = tmp_path / "its.json"
    config.write_text(json.dumps(its_json(*(its_json_item(name) for name in itses))))
    return config


def test_missing_hosting_credentials_is_one_clear_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, ["its1"])
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert cli.main(["install", "--config", str(config)]) == cli.EXIT_USAGE == 2
    assert capsys.readouterr().err.startswith("ks-its-hook: no credentials for the hosting cluster: ")


def test_an_unreadable_configuration_is_exit_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "its.json"
    bad.write_text("{")
    assert cli.main(["install", "--config", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"ks-its-hook: invalid configuration {bad}: its.json is not JSON")


@pytest.mark.parametrize(
    ("failures", "code"),
    [
        ([], 0),
        ([Failure("a", "space", "x", permanent=True)], 3),
        ([Failure("a", "space", "x", permanent=True), Failure("b", "space", "y", permanent=True)], 3),
        ([Failure("a", "space", "x", permanent=True), Failure("b", "ocm-hub", "timed out", permanent=False)], 1),
    ],
)
def test_exit_code_is_permanent_only_when_every_failure_is(failures: list[Failure], code: int) -> None:
    assert cli.exit_code(failures) == code


def test_each_pod_runs_its_shard_with_the_overridden_deadline_and_prints_one_line_per_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, ["a", "b", "c", "d"])
    runs: list[tuple[str, str, float]] = []

    def fake_run(mode: str, hosting: Any, its: Any, settings: Any, log: Any, started: Any) -> Failure | None:
        runs.append((mode, its.name, settings.deadline_seconds))
        return Failure(its.name, "ocm-hub", "broken", permanent=True) if its.name == "c" else None

    monkeypatch.setattr(pipeline, "run", fake_run)
    monkeypatch.setattr(cli, "hosting_client", lambda connections: None)
    code = cli.main(["check", "--config", str(config), "--index", "0", "--shards", "2", "--deadline", "42"])
    assert sorted(runs) == [("check", "a", 42.0), ("check", "c", 42.0)]
    assert code == 3
    assert capsys.readouterr().err == "ITS c: step ocm-hub failed: broken\n"


def test_in_a_pod_the_outcome_becomes_the_termination_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, ["a", "b"])
    log = tmp_path / "termination-log"
    log.touch()
    for key, value in {"POD_NAMESPACE": "ns", "POD_NAME": "p", "ITS_HOOK_JOB": "job", "ITS_TERMINATION_LOG": str(log)}.items():
        monkeypatch.setenv(key, value)
    seen_while_running: list[str] = []

    def fake_run(mode: str, hosting: Any, its: Any, settings: Any, log_: Any, started: Any) -> Failure | None:
        seen_while_running.append(log.read_text())
        return Failure(its.name, "space", "gone", permanent=False) if its.name == "b" else None

    monkeypatch.setattr(pipeline, "run", fake_run)
    monkeypatch.setattr(cli, "hosting_client", lambda connections: None)
    reported: list[tuple[str, str, list[Failure]]] = []
    monkeypatch.setattr(pod, "report_failures", lambda hosting, ns, job, failures: reported.append((ns, job, failures)))
    assert cli.main(["install", "--config", str(config)]) == 1
    assert all(text.startswith("not finished: a, b.") for text in seen_while_running)
    assert log.read_text() == "ITS b: step space failed: gone\n"
    assert reported == [("ns", "job", [Failure("b", "space", "gone", permanent=False)])]
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert cli.main(["install", "--config", str(bad)]) == 2
    assert log.read_text().startswith(f"ks-its-hook: invalid configuration {bad}: its.json must be an object")


def test_cleanup_needs_its_targets(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert cli.main(["cleanup", "--job", "j", "--job", "k", "--test-pod", "p"]) == 2
    assert "cleanup needs --job, --test-pod and $POD_NAMESPACE" in capsys.readouterr().err


def test_sigterm_ends_the_hook_at_once_saying_what_it_left_undone(tmp_path: Path) -> None:
    """As a deleted pod's PID 1 gets it: without a handler the hook would run on (here: retry an
    unreachable hosting cluster) until the kubelet's SIGKILL."""
    config = write_config(tmp_path, ["a", "b"])
    log = tmp_path / "termination-log"
    log.touch()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {}}],
            }
        )
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "POD_NAMESPACE": "ns",
        "ITS_HOOK_JOB": "job",
        "ITS_TERMINATION_LOG": str(log),
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    hook = subprocess.Popen(
        [sys.executable, "-m", "ks_its_hooks.cli", "install", "--config", str(config)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert hook.stderr is not None
    first = hook.stderr.readline()  # the hook is past its start: it logs its first wait
    hook.send_signal(signal.SIGTERM)
    _, rest = hook.communicate(timeout=30)
    assert hook.returncode == 128 + signal.SIGTERM, first + rest
    expected = (
        "ks-its-hook: install stopped by SIGTERM (pod deleted) before it finished: a, b; "
        "the next hook run (helm upgrade) takes them up again"
    )
    assert rest.splitlines()[-1] == expected
    assert log.read_text() == expected + "\n"


def test_a_sigterm_while_the_hook_starts_is_kept_and_ends_it_once_it_knows_its_itses() -> None:
    """A pod deleted while the hook still reads its configuration: as PID 1 it would ignore the signal."""
    program = (
        "import os, signal\n"
        "from ks_its_hooks import termination\n"
        "termination.hold_sigterm()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "termination.end_on_sigterm('install', ['a'], None)\n"
        "print('ran on')\n"
    )
    hook = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=False)
    assert (hook.returncode, hook.stdout) == (128 + signal.SIGTERM, ""), hook.stderr
    assert hook.stderr.splitlines()[-1] == (
        "ks-its-hook: install stopped by SIGTERM (pod deleted) before it finished: a; "
        "the next hook run (helm upgrade) takes them up again"
    )
