"""The steps of an ITS, in order. `install` ensures each, `check` (helm test) verifies each: one loop.

Adding a step means adding its module and one entry in STEPS.
"""

from __future__ import annotations

from typing import Literal

from kubernetes import client

from . import ocm_hub, properties, registration, space, status_addon
from .deadline import Deadline
from .errors import Failure, failure
from .log import EventLog
from .spec import HookConfig, ItsSpec
from .step import Context, Step

STEPS: tuple[Step, ...] = (space.STEP, ocm_hub.STEP, status_addon.STEP, properties.STEP, registration.STEP)

Mode = Literal["install", "check"]


def run(mode: Mode, hosting: client.ApiClient, its: ItsSpec, config: HookConfig, log: EventLog) -> Failure | None:
    """Run every step for one ITS under one deadline. Returns the failure, logged (and, on install,
    recorded on the ControlPlane), or None when the ITS is ready."""
    ctx = Context(hosting=hosting, its=its, config=config, deadline=Deadline(config.deadline_seconds), log=log)
    for step in STEPS:
        ctx.step = step.name
        try:
            (step.ensure if mode == "install" else step.verify)(ctx)
        except Exception as err:  # KeyboardInterrupt and SystemExit are not a step's failure
            failed = failure(its.name, step.name, err)
            log.error(step.name, failed.line, error=type(err).__name__, permanent=failed.permanent)
            if mode == "install":
                registration.record_failure(ctx, failed)
            return failed
    log.info("done", "ITS ready", took_s=round(ctx.deadline.elapsed(), 2))
    return None
