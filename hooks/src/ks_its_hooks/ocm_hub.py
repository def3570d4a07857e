"""Step `ocm-hub`: the OCM Cluster Manager. Run `clusteradm init` unless the hub exists, then wait
until it is usable."""

from __future__ import annotations

import functools
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from . import commands, kube, workloads
from .errors import PermanentError, TransientError
from .readiness import condition_reason, condition_status, crds_pending
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
# What clusteradm init makes: the cluster-manager operator, which makes the hub's controllers.
OPERATOR_NAMESPACE, OPERATOR_DEPLOYMENT = "open-cluster-management", "cluster-manager"
HUB_NAMESPACE = "open-cluster-management-hub"
HUB_DEPLOYMENTS = (
    "cluster-manager-registration-controller",
    "cluster-manager-registration-webhook",
    "cluster-manager-work-webhook",
    "cluster-manager-placement-controller",
    "cluster-manager-addon-manager-controller",
)
CLUSTERADM_ATTEMPTS = 3
def init_command(ocm: OcmSettings, kubeconfig_path: str) -> list[str]:
    command = ["clusteradm", "init", "--kubeconfig", kubeconfig_path, "--bundle-version", ocm.bundle_version]
    if ocm.image_registry:
        command += ["--image-registry", ocm.image_registry]
    return command


def clustermanager_pending(objects: dict[str, dict[str, Any]]) -> str | None:
    """None once the operator applied the hub and its controllers run: Applied alone means applied,
    not running (Progressing and the Degraded conditions hold until the hub's Deployments are available)."""
    cm = objects.get(CM_NAME)
    if cm is None:
        return f"ClusterManager {CM_NAME} does not exist"
    if condition_status(cm, "Applied") != "True":
        return f"ClusterManager not Applied ({condition_reason(cm, 'Applied') or 'no Applied condition yet'})"
    for cond_type, healthy in (("Progressing", "False"), ("HubRegistrationDegraded", "False"),
                               ("HubPlacementDegraded", "False")):
        status = condition_status(cm, cond_type)
        if status is not None and status != healthy:
            return f"ClusterManager {cond_type}={status} ({condition_reason(cm, cond_type)})"
    return None


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


def run_init(ctx: Context) -> None:
    ocm = ctx.config.ocm

    def attempt() -> None:
        with commands.private_files({"kubeconfig": ctx.space.kubeconfig}) as paths:
            ctx.info("running clusteradm init", bundle_version=ocm.bundle_version,
                     image_registry=ocm.image_registry or "clusteradm default")
            result = commands.run(ctx, init_command(ocm, paths["kubeconfig"]))
        if result.returncode != 0:
            raise TransientError(f"clusteradm init exited {result.returncode}: {commands.output_tail(result)}")

    ctx.call(attempt, "clusteradm init", attempts=CLUSTERADM_ATTEMPTS)


def diagnose(ctx: Context) -> str | None:
    """The first of the hub's Deployments that is not available, and why: what a user acts on rather
    than a condition."""
    return (workloads.why_not_available(ctx.space.api, OPERATOR_NAMESPACE, (OPERATOR_DEPLOYMENT,))
            or workloads.why_not_available(ctx.space.api, HUB_NAMESPACE, HUB_DEPLOYMENTS))


def probe_webhooks(ctx: Context) -> None:
    """A server-side dry run of a ManagedCluster and a ManifestWork: OCM's admission webhooks judge
    both (failure policy Fail), so they succeed only once the webhooks answer. Nothing is stored."""
    custom = client.CustomObjectsApi(ctx.space.api)
    cluster = {"apiVersion": "cluster.open-cluster-management.io/v1", "kind": "ManagedCluster",
               "metadata": {"generateName": "ks-its-webhook-probe-"}, "spec": {"hubAcceptsClient": False}}
    work = {"apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
            "metadata": {"generateName": "ks-its-webhook-probe-"},
            "spec": {"workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "ks-its-webhook-probe", "namespace": "default"}}]}}}
    # Until the webhooks serve, the API server answers 500 ("failed calling webhook"): retried.
    ctx.call(lambda: custom.create_cluster_custom_object(
        "cluster.open-cluster-management.io", "v1", "managedclusters", cluster, dry_run="All"),
        "asking the ManagedCluster webhooks (dry run)")
    ctx.call(lambda: custom.create_namespaced_custom_object(
        "work.open-cluster-management.io", "v1", HUB_NAMESPACE, "manifestworks", work, dry_run="All"),
        "asking the ManifestWork webhook (dry run)")


def wait_ready(ctx: Context) -> None:
    """Ready means serving: a WEC can register and receive work."""
    custom = client.CustomObjectsApi(ctx.space.api)
    with workloads.deadline_explained(ctx, "the OCM hub", functools.partial(diagnose, ctx)):
        list_cm = functools.partial(custom.list_cluster_custom_object, CM_GROUP, CM_VERSION, CM_PLURAL)
        ctx.wait_until(list_cm, clustermanager_pending, "the ClusterManager to be applied and running",
                       field_selector=f"metadata.name={CM_NAME}")
        ctx.wait_until(kube.lister(ctx.space.api, kube.DEPLOYMENTS, HUB_NAMESPACE),
                       functools.partial(workloads.deployments_pending, HUB_DEPLOYMENTS), "the hub's Deployments")
    ctx.wait_until(kube.lister(ctx.space.api, kube.CRDS), functools.partial(crds_pending, HUB_CRDS),
                   "hub CRDs Established")
    probe_webhooks(ctx)
    ctx.info("OCM hub serving", waited_s=round(ctx.deadline.elapsed(), 2))


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
    verified_by=(f"ClusterManager {CM_NAME} applied and not Progressing or Degraded, the hub's Deployments "
                 "available, every hub CRD Established, and the admission webhooks answering a dry run"),
    ensure=ensure,
    verify=verify,
)
