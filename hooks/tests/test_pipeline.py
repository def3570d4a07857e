"""The pipeline: one loop over the declared steps, for install (ensure) and check (verify)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from factories import its
from ks_its_hooks import ocm_hub, pipeline, properties, registration, space, status_addon
from ks_its_hooks.errors import Failure, PermanentError
from ks_its_hooks.log import EventLog
from ks_its_hooks.spec import HookConfig, OcmSettings, StatusAddonSettings
from ks_its_hooks.step import Context, Step

ITS = its("its1")
CONFIG = HookConfig(
    itses=(ITS,),
    deadline_seconds=30,
    ocm=OcmSettings("", "default"),
    status_addon=StatusAddonSettings("oci://r/c", "v1", False, "", None, {}),
)


def test_the_steps_say_what_they_ensure_and_keep_the_order_they_depend_on() -> None:
    every = (*pipeline.STEPS, *pipeline.PREFLIGHT_STEPS, *pipeline.NAMESPACE_STEPS)
    assert len({step.name for step in every}) == len(every), "a failure names its step: names are unique"
    assert all(step.ensures and step.verified_by for step in every)
    # Every later step works in the space the first reaches; the ITS label, which consumers find ITSes
    # by, comes last, once everything else holds; the add-on needs the hub's CRDs.
    assert pipeline.STEPS[0] is space.STEP and pipeline.STEPS[-1] is registration.STEP
    assert pipeline.STEPS.index(ocm_hub.STEP) < pipeline.STEPS.index(status_addon.STEP)
    assert properties.STEP in pipeline.STEPS


def recording_steps(calls: list[str], fail_at: str | None = None, error: Exception | None = None) -> tuple[Step, ...]:
    def action(name: str, kind: str) -> Any:
        def run(ctx: Context) -> None:
            assert ctx.step == name, "the loop names the running step"
            calls.append(f"{kind} {name}")
            if name == fail_at:
                raise error or PermanentError("broken")

        return run

    return tuple(Step(name, "x", "y", action(name, "ensure"), action(name, "verify")) for name in ("a", "b", "c"))


@pytest.mark.parametrize(("mode", "kind"), [("install", "ensure"), ("check", "verify")])
def test_install_ensures_and_check_verifies_every_step_in_order(
    monkeypatch: pytest.MonkeyPatch, mode: pipeline.Mode, kind: str
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(pipeline, "STEPS", recording_steps(calls))
    out = io.StringIO()
    assert pipeline.run(mode, None, ITS, CONFIG, EventLog("its1", out)) is None  # type: ignore[arg-type]
    assert calls == [f"{kind} a", f"{kind} b", f"{kind} c"]
    assert 'msg="ITS ready"' in out.getvalue().splitlines()[-1]


@pytest.mark.parametrize(("mode", "recorded"), [("install", True), ("check", False)])
def test_a_failure_names_the_running_step_stops_the_loop_and_is_recorded_on_install(
    monkeypatch: pytest.MonkeyPatch, mode: pipeline.Mode, recorded: bool
) -> None:
    calls: list[str] = []
    records: list[Failure] = []
    monkeypatch.setattr(pipeline, "STEPS", recording_steps(calls, fail_at="b"))
    monkeypatch.setattr(registration, "record_failure", lambda ctx, failed: records.append(failed))
    out = io.StringIO()
    failed = pipeline.run(mode, None, ITS, CONFIG, EventLog("its1", out))  # type: ignore[arg-type]
    assert failed == Failure("its1", "b", "broken", permanent=True)
    assert len(calls) == 2
    assert records == ([failed] if recorded else [])
    last = out.getvalue().splitlines()[-1]
    assert "level=error" in last and "step=b" in last and "permanent=True" in last
    assert 'msg="ITS its1: step b failed: broken"' in last


def test_an_interrupt_is_not_a_step_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "STEPS", recording_steps([], fail_at="a", error=KeyboardInterrupt()))  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        pipeline.run("install", None, ITS, CONFIG, EventLog("its1", io.StringIO()))  # type: ignore[arg-type]


def test_the_namespaces_run_ensures_only_the_namespace_step(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(pipeline, "NAMESPACE_STEPS", recording_steps(calls)[:1])
    monkeypatch.setattr(pipeline, "STEPS", recording_steps(calls)[1:])
    out = io.StringIO()
    assert pipeline.run("namespaces", None, ITS, CONFIG, EventLog("its1", out)) is None  # type: ignore[arg-type]
    assert calls == ["ensure a"]
    assert 'msg="namespace ready for the hook"' in out.getvalue().splitlines()[-1]
