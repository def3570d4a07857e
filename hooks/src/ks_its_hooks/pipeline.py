"""The steps for one ITS, in order, under one deadline; and the read-only check `helm test` runs."""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from . import ocm_hub, properties, registration, space
from .deadline import Deadline, DeadlineExceeded
from .errors import PermanentError, StepFailed, describe
from .log import EventLog
from .spec import HookConfig, ItsSpec


def _cause(err: BaseException) -> str:
    if isinstance(err, PermanentError | DeadlineExceeded | RuntimeError) and not isinstance(err, ApiException):
        return str(err)
    return describe(err)


class _Progress:
    step = space.STEP


def install(hosting: client.ApiClient, its: ItsSpec, config: HookConfig, log: EventLog) -> StepFailed | None:
    """Bring one ITS to ready. Returns the failure, after logging it and recording it on the ControlPlane."""
    deadline = Deadline(config.deadline_seconds)
    progress = _Progress()
    try:
        reached = space.reach(hosting, its, deadline, log)
        progress.step = ocm_hub.STEP
        ocm_hub.ensure(reached, config, deadline, log)
        progress.step = properties.STEP
        properties.ensure(reached, deadline, log)
        progress.step = registration.STEP
        registration.record(hosting, its, registration.READY, deadline, log)
    except Exception as err:
        failure = StepFailed(its.name, progress.step, _cause(err))
        log.error(progress.step, str(failure), error=type(err).__name__)
        registration.record_failure(hosting, its, f"{progress.step}: {failure.cause}", log)
        return failure
    log.info("done", "ITS ready", took_s=round(deadline.elapsed(), 2))
    return None


def check(hosting: client.ApiClient, its: ItsSpec, config: HookConfig, log: EventLog) -> StepFailed | None:
    """Read-only: is the ITS ready now? Waits at most the (short) configured deadline."""
    deadline = Deadline(config.deadline_seconds)
    progress = _Progress()
    try:
        reached = space.reach(hosting, its, deadline, log)
        progress.step = ocm_hub.STEP
        if not ocm_hub.hub_exists(reached, deadline, log):
            raise PermanentError(f"the space has no ClusterManager {ocm_hub.CM_NAME}")
        ocm_hub.wait_ready(reached, deadline, log)
        progress.step = properties.STEP
        client.CoreV1Api(reached.api).read_namespace(properties.NAMESPACE)
        progress.step = registration.STEP
        controlplane = cast(dict[str, Any], client.CustomObjectsApi(hosting).get_cluster_custom_object(
            space.CP_GROUP, space.CP_VERSION, space.CP_PLURAL, its.name))
        labels = (controlplane.get("metadata") or {}).get("labels") or {}
        if labels.get(registration.ITS_LABEL) != registration.ITS_LABEL_VALUE:
            raise PermanentError(f"ControlPlane has no label {registration.ITS_LABEL}={registration.ITS_LABEL_VALUE}")
    except Exception as err:
        failure = StepFailed(its.name, progress.step, _cause(err))
        log.error(progress.step, str(failure))
        return failure
    log.info("check", "ITS ready")
    return None
