"""Step 2: the OCM hub. Run `clusteradm init` unless the hub exists, then wait until it is usable."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tenacity
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .deadline import Deadline, call
from .errors import PermanentError
from .log import EventLog
from .readiness import condition_reason, condition_status, wait_until
from .space import Space
from .spec import HookConfig

STEP = "ocm-hub"
CM_GROUP = "operator.open-cluster-management.io"
CM_VERSION = "v1"
CM_PLURAL = "clustermanagers"
CM_NAME = "cluster-manager"
# The CRDs a WEC registration and transport need; Established, not merely created.
HUB_CRDS = (
    "managedclusters.cluster.open-cluster-management.io",
    "managedclustersets.cluster.open-cluster-management.io",
    "managedclustersetbindings.cluster.open-cluster-management.io",
    "placements.cluster.open-cluster-management.io",
    "placementdecisions.cluster.open-cluster-management.io",
    "manifestworks.work.open-cluster-management.io",
    "clustermanagementaddons.addon.open-cluster-management.io",
    "managedclusteraddons.addon.open-cluster-management.io",
)
CLUSTERADM_ATTEMPTS = 3
_SECRET_PATTERNS = (
    re.compile(r"(--hub-token[ =])\S+"),
    re.compile(r"(token[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._-]{16,}", re.IGNORECASE),
    re.compile(r"(eyJ)[A-Za-z0-9._-]{20,}"),
)


def redact(text: str) -> str:
    """Remove bootstrap tokens and JWTs from clusteradm's output before it is logged."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1<redacted>", text)
    return text


def init_command(config: HookConfig, kubeconfig_path: str) -> list[str]:
    command = ["clusteradm", "init", "--kubeconfig", kubeconfig_path, "--bundle-version", config.bundle_version]
    if config.image_registry:
        command += ["--image-registry", config.image_registry]
    return command


def crds_pending(objects: dict[str, dict[str, Any]]) -> str | None:
    missing = [name for name in HUB_CRDS if condition_status(objects.get(name, {}), "Established") != "True"]
    return f"CRDs not Established: {', '.join(missing)}" if missing else None


def clustermanager_pending(objects: dict[str, dict[str, Any]]) -> str | None:
    cm = objects.get(CM_NAME)
    if cm is None:
        return f"ClusterManager {CM_NAME} does not exist"
    if condition_status(cm, "Applied") == "True":
        return None
    return f"ClusterManager not Applied ({condition_reason(cm, 'Applied') or 'no Applied condition yet'})"


def hub_exists(space: Space, deadline: Deadline, log: EventLog) -> bool:
    custom = client.CustomObjectsApi(space.api)
    try:
        call(lambda: custom.get_cluster_custom_object(CM_GROUP, CM_VERSION, CM_PLURAL, CM_NAME),
             deadline, log, STEP, "reading the ClusterManager")
    except ApiException as err:
        if err.status == 404:  # no ClusterManager, or not even its CRD
            return False
        raise
    return True


@contextmanager
def private_kubeconfig(text: str) -> Iterator[str]:
    """The space kubeconfig as a file only this process can read, removed afterwards."""
    directory = tempfile.mkdtemp(prefix="ks-its-")  # mode 0700
    path = os.path.join(directory, "kubeconfig")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        yield path
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(directory)


def run_init(space: Space, config: HookConfig, deadline: Deadline, log: EventLog) -> None:
    def attempt() -> None:
        with private_kubeconfig(space.kubeconfig) as path:
            command = init_command(config, path)
            log.info(STEP, "running clusteradm init", bundle_version=config.bundle_version,
                     image_registry=config.image_registry or "clusteradm default")
            try:
                result = subprocess.run(command, capture_output=True, text=True, check=False,
                                        timeout=max(1.0, deadline.remaining()))
            except FileNotFoundError as err:
                raise PermanentError("clusteradm is not installed in the hook image") from err
            except subprocess.TimeoutExpired as err:
                raise PermanentError("clusteradm init did not finish before the deadline") from err
        if result.returncode != 0:
            tail = redact((result.stderr or result.stdout).strip())[-400:]
            raise RuntimeError(f"clusteradm init exited {result.returncode}: {tail}")

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warn(STEP, "clusteradm init failed; retrying", attempt=state.attempt_number, cause=str(exc))

    tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RuntimeError),
        wait=tenacity.wait_exponential_jitter(multiplier=1.0, max=10.0),
        stop=tenacity.stop_after_attempt(CLUSTERADM_ATTEMPTS) | tenacity.stop_before_delay(deadline.remaining()),
        before_sleep=before_sleep,
        reraise=True,
    )(attempt)


def wait_ready(space: Space, deadline: Deadline, log: EventLog) -> None:
    custom = client.CustomObjectsApi(space.api)
    list_cm = functools.partial(custom.list_cluster_custom_object, CM_GROUP, CM_VERSION, CM_PLURAL)
    wait_until(list_cm, clustermanager_pending, deadline, log, STEP, "ClusterManager Applied",
               field_selector=f"metadata.name={CM_NAME}")
    extensions = client.ApiextensionsV1Api(space.api)
    wait_until(extensions.list_custom_resource_definition, crds_pending, deadline, log, STEP,
               "hub CRDs Established")


def ensure(space: Space, config: HookConfig, deadline: Deadline, log: EventLog) -> None:
    exists = hub_exists(space, deadline, log)
    if not exists and not space.its.install_clusteradm:
        raise PermanentError(
            f"install_clusteradm is false but the space has no ClusterManager {CM_NAME}: "
            "install OCM there first or set install_clusteradm to true"
        )
    if exists:
        log.info(STEP, "ClusterManager exists; not running clusteradm init")
    else:
        run_init(space, config, deadline, log)
    wait_ready(space, deadline, log)
    log.info(STEP, "OCM hub ready", waited_s=round(deadline.elapsed(), 2))
