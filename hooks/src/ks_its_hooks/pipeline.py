"""The steps for one ITS, in order, under one deadline; and the read-only check `helm test` runs."""

from __future__ import annotations

from types import TracebackType
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


class _Steps:
    """The step one ITS is in; an exception in it becomes `failure`, a StepFailed naming the ITS and the step."""

    def __init__(self, its: ItsSpec, log: EventLog) -> None:
        self.its = its
        self.step = space.STEP
        self.failure: StepFailed | None = None
        self._log = log

    def __enter__(self) -> _Steps:
        return self

    def __exit__(self, _type: type[BaseException] | None, err: BaseException | None, _tb: TracebackType | None) -> bool:
        if not isinstance(err, Exception):
            return False  # success, or KeyboardInterrupt/SystemExit: not a step's failure
        self.failure = StepFailed(self.its.name, self.step, _cause(err))
        self._log.error(self.step, str(self.failure), error=type(err).__name__)
        return True


def install(hosting: client.ApiClient, its: ItsSpec, config: HookConfig, log: EventLog) -> StepFailed | None:
    """Bring one ITS to ready. Returns the failure, after logging it and recording it on the ControlPlane."""
    deadline = Deadline(config.deadline_seconds)
    with _Steps(its, log) as steps:
        reached = space.reach(hosting, its, deadline, log)
        steps.step = ocm_hub.STEP
        ocm_hub.ensure(reached, config, deadline, log)
        steps.step = properties.STEP
        properties.ensure(reached, deadline, log)
        steps.step = registration.STEP
        registration.record(hosting, its, registration.READY, deadline, log)
    if steps.failure:
        registration.record_failure(hosting, its, f"{steps.step}: {steps.failure.cause}", log)
        return steps.failure
    log.info("done", "ITS ready", took_s=round(deadline.elapsed(), 2))
    return None


def check(hosting: client.ApiClient, its: ItsSpec, config: HookConfig, log: EventLog) -> StepFailed | None:
    """Read-only: is the ITS ready now? Waits at most the (short) configured deadline."""
    deadline = Deadline(config.deadline_seconds)
    with _Steps(its, log) as steps:
        reached = space.reach(hosting, its, deadline, log)
        steps.step = ocm_hub.STEP
        if not ocm_hub.hub_exists(reached, deadline, log):
            raise PermanentError(f"the space has no ClusterManager {ocm_hub.CM_NAME}")
        ocm_hub.wait_ready(reached, deadline, log)
        steps.step = properties.STEP
        client.CoreV1Api(reached.api).read_namespace(properties.NAMESPACE)
        steps.step = registration.STEP
        controlplane = cast(dict[str, Any], client.CustomObjectsApi(hosting).get_cluster_custom_object(
            space.CP_GROUP, space.CP_VERSION, space.CP_PLURAL, its.name))
        labels = (controlplane.get("metadata") or {}).get("labels") or {}
        if labels.get(registration.ITS_LABEL) != registration.ITS_LABEL_VALUE:
            raise PermanentError(f"ControlPlane has no label {registration.ITS_LABEL}={registration.ITS_LABEL_VALUE}")
    if steps.failure:
        return steps.failure
    log.info("check", "ITS ready")
    return None
