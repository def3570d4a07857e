"""The context steps share: the space, and calls that carry the running step's name."""

from __future__ import annotations

import io

import pytest
from factories import its
from ks_its_hooks.deadline import Deadline
from ks_its_hooks.log import EventLog
from ks_its_hooks.spec import HookConfig, OcmSettings, StatusAddonSettings
from ks_its_hooks.step import Context
from kubernetes.client.exceptions import ApiException

ITS = its("its1")


def context(out: io.StringIO) -> Context:
    config = HookConfig(
        itses=(ITS,),
        deadline_seconds=30,
        ocm=OcmSettings("", "default"),
        status_addon=StatusAddonSettings("oci://r/c", "v1", False, "", None, {}),
    )
    return Context(
        hosting_api=None,
        its=ITS,
        config=config,
        deadline=Deadline(30),  # type: ignore[arg-type]
        log=EventLog("its1", out),
        step="ocm-hub",
    )


def test_the_space_is_there_only_once_the_space_step_reached_it() -> None:
    with pytest.raises(RuntimeError, match="step ocm-hub runs before the space step reached the space"):
        _ = context(io.StringIO()).space


def test_retries_logs_and_requests_carry_the_running_step() -> None:
    out = io.StringIO()
    ctx = context(out)
    failures = [ApiException(status=503)]

    def flaky() -> int:
        if failures:
            raise failures.pop()
        return 7

    assert ctx.retry(flaky, "reading y") == 7
    ctx.info("hello", n=1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all("step=ocm-hub" in line for line in lines)
    assert 'msg="retrying reading y"' in lines[0] and "msg=hello n=1" in lines[1]
    # The clients name the step running at the time of each request, not the one at their making.
    ctx.step = "registration"
    assert ctx.hosting.step() == "registration" and ctx.client(None).step() == "registration"  # type: ignore[arg-type]
