"""The steps of an ITS, in order, for each command of a hook run. `install` ensures each, `check`
(helm test) verifies each: one loop. `preflight`, before the release applies anything, ensures only that
the space's namespace is free for KubeFlex; `namespaces`, the run's first Job, only that KubeFlex made it,
so that the credentials there can be granted to the hook before it runs.

Adding a step means adding its module and one entry in STEPS.
"""

from __future__ import annotations

from typing import Literal

from kubernetes import client

from . import namespaces, ocm_hub, preflight, properties, registration, space, status_addon
from .deadline import Deadline
from .errors import Failure, failure
from .log import EventLog
from .spec import HookConfig, ItsSpec
from .step import Context, Step

STEPS: tuple[Step, ...] = (space.STEP, ocm_hub.STEP, status_addon.STEP, properties.STEP, registration.STEP)
PREFLIGHT_STEPS: tuple[Step, ...] = (preflight.STEP,)
NAMESPACE_STEPS: tuple[Step, ...] = (namespaces.STEP,)

Mode = Literal["preflight", "namespaces", "install", "check"]
# What the log's last line of a done ITS says, and the termination message of a pod whose ITSes are done.
DONE = {
    "preflight": "namespace free for KubeFlex",
    "namespaces": "namespace ready for the hook",
    "install": "ITS ready",
    "check": "ITS ready",
}
FINISHED = {"preflight": "preflight passed", "namespaces": "namespaces ready", "install": "ready", "check": "ready"}


def steps(mode: Mode) -> tuple[Step, ...]:
    return {"preflight": PREFLIGHT_STEPS, "namespaces": NAMESPACE_STEPS}.get(mode, STEPS)


def run(
    mode: Mode, hosting: client.ApiClient, its: ItsSpec, config: HookConfig, log: EventLog, started: float | None = None
) -> Failure | None:
    """Run the mode's steps for one ITS under one deadline, which began at `started` (a time.monotonic
    reading; now by default). Returns the failure, logged (and, on install and namespaces, recorded on
    the ControlPlane), or None when the ITS is done."""
    deadline = Deadline(config.deadline_seconds, started=started)
    ctx = Context(hosting_api=hosting, its=its, config=config, deadline=deadline, log=log)
    for step in steps(mode):
        ctx.step = step.name
        try:
            (step.verify if mode == "check" else step.ensure)(ctx)
        except Exception as err:  # KeyboardInterrupt and SystemExit are not a step's failure
            failed = failure(its.name, step.name, err)
            log.error(step.name, failed.line, error=type(err).__name__, permanent=failed.permanent)
            if mode in ("namespaces", "install"):  # the preflight's ITS has no ControlPlane yet
                registration.record_failure(ctx, failed)
            return failed
    log.info("done", DONE[mode], took_s=round(ctx.deadline.elapsed(), 2))
    return None
