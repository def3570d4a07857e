"""Step 4: register the ControlPlane as an ITS, and record each run's outcome on it.

The `kflex.kubestellar.io/cptype=its` label is how consumers find ITSes, so it is set last,
once the space is fully ready, and never removed by a later failed run.
"""

from __future__ import annotations

import time
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from . import FIELD_MANAGER
from .deadline import Deadline, call
from .log import EventLog
from .manifests import render
from .space import CP_GROUP, CP_PLURAL, CP_VERSION
from .spec import ItsSpec

STEP = "registration"
ITS_LABEL = "kflex.kubestellar.io/cptype"
ITS_LABEL_VALUE = "its"
STATUS_ANNOTATION = "its.kubestellar.io/status"
STATUS_TIME_ANNOTATION = "its.kubestellar.io/status-time"
READY = "Ready"


def desired_metadata(
    controlplane: dict[str, Any], outcome: str, now: float
) -> tuple[dict[str, str], dict[str, str]] | None:
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


def record(hosting: client.ApiClient, its: ItsSpec, outcome: str, deadline: Deadline, log: EventLog) -> bool:
    """Apply the outcome to the ControlPlane. Returns whether anything was written."""
    custom = client.CustomObjectsApi(hosting)
    controlplane = cast(dict[str, Any], call(
        lambda: custom.get_cluster_custom_object(CP_GROUP, CP_VERSION, CP_PLURAL, its.name),
        deadline, log, STEP, "reading the ControlPlane"))
    wanted = desired_metadata(controlplane, outcome, time.time())
    if wanted is None:
        log.info(STEP, "ControlPlane already records this outcome", outcome=outcome)
        return False
    labels, annotations = wanted
    body = render("registration.yaml.j2", name=its.name, labels=labels, annotations=annotations)
    call(
        lambda: custom.patch_cluster_custom_object(
            CP_GROUP, CP_VERSION, CP_PLURAL, its.name, body,
            field_manager=FIELD_MANAGER, force=True, _content_type="application/apply-patch+yaml",
        ),
        deadline, log, STEP, "applying the registration",
    )
    log.info(STEP, "ControlPlane updated", outcome=outcome, its_label=bool(labels))
    return True


def record_failure(hosting: client.ApiClient, its: ItsSpec, summary: str, log: EventLog) -> None:
    """Best effort, with a short deadline of its own: the run has failed already."""
    try:
        record(hosting, its, f"Failed: {summary}"[:250], Deadline(15), log)
    except ApiException as err:
        log.warn(STEP, "could not record the failure on the ControlPlane", status=err.status)
    except Exception as err:
        log.warn(STEP, "could not record the failure on the ControlPlane", cause=type(err).__name__)
