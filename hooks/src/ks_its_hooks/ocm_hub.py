"""Step `ocm-hub`: the OCM Cluster Manager. Run `clusteradm init` unless the hub exists, then wait
until it is usable."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .errors import DeadlineExceeded, PermanentError, TransientError
from .readiness import condition_reason, condition_status
from .spec import OcmSettings
from .step import Context, Step

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


def init_command(ocm: OcmSettings, kubeconfig_path: str) -> list[str]:
    command = ["clusteradm", "init", "--kubeconfig", kubeconfig_path, "--bundle-version", ocm.bundle_version]
    if ocm.image_registry:
        command += ["--image-registry", ocm.image_registry]
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


def hub_exists(ctx: Context) -> bool:
    custom = client.CustomObjectsApi(ctx.space.api)
    try:
        ctx.call(lambda: custom.get_cluster_custom_object(CM_GROUP, CM_VERSION, CM_PLURAL, CM_NAME),
                 "reading the ClusterManager")
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


def run_init(ctx: Context) -> None:
    ocm = ctx.config.ocm

    def attempt() -> None:
        with private_kubeconfig(ctx.space.kubeconfig) as path:
            ctx.info("running clusteradm init", bundle_version=ocm.bundle_version,
                     image_registry=ocm.image_registry or "clusteradm default")
            try:
                result = subprocess.run(init_command(ocm, path), capture_output=True, text=True, check=False,
                                        timeout=max(1.0, ctx.deadline.remaining()))
            except FileNotFoundError as err:
                raise PermanentError("clusteradm is not installed in the hook image") from err
            except subprocess.TimeoutExpired as err:
                raise DeadlineExceeded(
                    f"timed out after {ctx.deadline.elapsed():.0f}s: clusteradm init did not finish") from err
        if result.returncode != 0:
            tail = redact((result.stderr or result.stdout).strip())[-400:]
            raise TransientError(f"clusteradm init exited {result.returncode}: {tail}")

    ctx.call(attempt, "clusteradm init", attempts=CLUSTERADM_ATTEMPTS)


def wait_ready(ctx: Context) -> None:
    custom = client.CustomObjectsApi(ctx.space.api)
    list_cm = functools.partial(custom.list_cluster_custom_object, CM_GROUP, CM_VERSION, CM_PLURAL)
    ctx.wait_until(list_cm, clustermanager_pending, "ClusterManager Applied", field_selector=f"metadata.name={CM_NAME}")
    extensions = client.ApiextensionsV1Api(ctx.space.api)
    ctx.wait_until(extensions.list_custom_resource_definition, crds_pending, "hub CRDs Established")
    ctx.info("OCM hub ready", waited_s=round(ctx.deadline.elapsed(), 2))


def no_hub(ctx: Context) -> PermanentError:
    if ctx.its.install_clusteradm:
        return PermanentError(f"the space has no ClusterManager {CM_NAME}")
    return PermanentError(f"install_clusteradm is false but the space has no ClusterManager {CM_NAME}: "
                          "install OCM there first or set install_clusteradm to true")


def ensure(ctx: Context) -> None:
    if hub_exists(ctx):
        ctx.info("ClusterManager exists; not running clusteradm init")
    elif ctx.its.install_clusteradm:
        run_init(ctx)
    else:
        raise no_hub(ctx)
    wait_ready(ctx)


def verify(ctx: Context) -> None:
    if not hub_exists(ctx):
        raise no_hub(ctx)
    wait_ready(ctx)


STEP = Step(
    name="ocm-hub",
    ensures="the OCM Cluster Manager runs in the space (clusteradm init, unless a hub exists or "
            "install_clusteradm is false)",
    verified_by=f"ClusterManager {CM_NAME} Applied and every hub CRD Established",
    ensure=ensure,
    verify=verify,
)
