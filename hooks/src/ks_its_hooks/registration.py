"""Step `registration`: label the ControlPlane as an ITS, and record each run's outcome on it.

The `kflex.kubestellar.io/cptype=its` label is how consumers find ITSes, so it is set last,
once the space is fully ready, and never removed by a later failed run.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from . import kube
from .deadline import Deadline
from .errors import Failure, PermanentError, cause
from .kubeflex import ITS_LABEL, ITS_LABEL_VALUE
from .manifests import render
from .step import Context, Step

STATUS_ANNOTATION = "its.kubestellar.io/status"
STATUS_TIME_ANNOTATION = "its.kubestellar.io/status-time"
READY = "Ready"
# Recording a failure gets a deadline of its own: the run's may be spent already.
RECORD_FAILURE_SECONDS = 15


def desired_metadata(controlplane: dict[str, Any], outcome: str, now: float) -> tuple[dict[str, str], dict[str, str]] | None:
    """The labels and annotations the hook owns, or None if the object already shows them."""
    metadata = controlplane.get("metadata") or {}
    labels: dict[str, str] = metadata.get("labels") or {}
    annotations: dict[str, str] = metadata.get("annotations") or {}
    registered = outcome == READY or labels.get(ITS_LABEL) == ITS_LABEL_VALUE
    want_labels = {ITS_LABEL: ITS_LABEL_VALUE} if registered else {}
    unchanged = annotations.get(STATUS_ANNOTATION) == outcome and all(
        labels.get(key) == value for key, value in want_labels.items()
    )
    if unchanged and STATUS_TIME_ANNOTATION in annotations:
        return None
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return want_labels, {STATUS_ANNOTATION: outcome, STATUS_TIME_ANNOTATION: stamp}


def read_controlplane(ctx: Context) -> dict[str, Any]:
    controlplane = ctx.hosting.get(kube.CONTROLPLANES, ctx.its.name)
    if controlplane is None:
        raise PermanentError(f"ControlPlane {ctx.its.name} is gone")
    return controlplane


def record(ctx: Context, outcome: str) -> bool:
    """Apply the outcome to the ControlPlane. Returns whether anything was written."""
    wanted = desired_metadata(read_controlplane(ctx), outcome, time.time())
    if wanted is None:
        ctx.info("ControlPlane already records this outcome", outcome=outcome)
        return False
    labels, annotations = wanted
    ctx.hosting.apply(
        kube.CONTROLPLANES, render("registration.yaml.j2", name=ctx.its.name, labels=labels, annotations=annotations)
    )
    ctx.info("ControlPlane updated", outcome=outcome, its_label=bool(labels))
    return True


def record_failure(ctx: Context, failed: Failure) -> None:
    """Best effort: the run has failed already, and this must not hide why."""
    own = dataclasses.replace(ctx, deadline=Deadline(RECORD_FAILURE_SECONDS), step=STEP.name)  # its own clients too
    try:
        record(own, f"Failed: {failed.step}: {failed.cause}"[:250])
    except Exception as err:
        own.warn("could not record the failure on the ControlPlane", cause=cause(err))


def ensure(ctx: Context) -> None:
    record(ctx, READY)


def verify(ctx: Context) -> None:
    labels = (read_controlplane(ctx).get("metadata") or {}).get("labels") or {}
    if labels.get(ITS_LABEL) != ITS_LABEL_VALUE:
        raise PermanentError(f"ControlPlane has no label {ITS_LABEL}={ITS_LABEL_VALUE}")


STEP = Step(
    name="registration",
    ensures=f"the ControlPlane carries {ITS_LABEL}={ITS_LABEL_VALUE} and {STATUS_ANNOTATION}={READY}",
    verified_by=f"the ControlPlane carries {ITS_LABEL}={ITS_LABEL_VALUE}",
    ensure=ensure,
    verify=verify,
)
