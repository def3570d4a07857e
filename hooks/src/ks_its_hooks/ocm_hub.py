"""Step `ocm-hub`: the OCM Cluster Manager. Run `clusteradm init` unless the hub exists, record on it
which ITS it is the hub of (refusing a hub that already is another live ITS's: two ITSes on one hub
would share one inventory), then wait until it is usable."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from typing import Any

import yaml

from . import bootstrap_identity, commands, hub_options, kube, workloads
from .errors import DeadlineExceeded, PermanentError, TransientError
from .readiness import condition_reason, condition_status, crds_pending
from .spec import HubOptions, OcmSettings
from .step import Context, Step

CM_NAME = kube.CLUSTER_MANAGER
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
# What clusteradm says, before it touches the cluster, of a --bundle-version its bundle map lacks.
UNKNOWN_BUNDLE = "couldn't find the requested version bundle"
# What the hub records of the ITS it serves: its name, its ControlPlane's uid, and the hosting cluster
# of that ControlPlane (the uid of its kube-system namespace), on the ClusterManager.
OWNER_ITS = "its.kubestellar.io/its"
OWNER_CONTROLPLANE_UID = "its.kubestellar.io/controlplane-uid"
OWNER_HOSTING_CLUSTER = "its.kubestellar.io/hosting-cluster"
# The ocm.* settings the hook last brought the hub to (clusteradm init, or apply_settings), on the ClusterManager.
SETTINGS_REGISTRY = "its.kubestellar.io/ocm-image-registry"
SETTINGS_BUNDLE = "its.kubestellar.io/ocm-bundle-version"


@dataclass(frozen=True)
class HubOwner:
    its: str
    controlplane_uid: str
    hosting_cluster: str

    def annotations(self) -> dict[str, str]:
        return {OWNER_ITS: self.its, OWNER_CONTROLPLANE_UID: self.controlplane_uid, OWNER_HOSTING_CLUSTER: self.hosting_cluster}


def recorded_owner(clustermanager: dict[str, Any]) -> HubOwner | None:
    annotations = (clustermanager.get("metadata") or {}).get("annotations") or {}
    if OWNER_CONTROLPLANE_UID not in annotations:
        return None
    return HubOwner(
        its=annotations.get(OWNER_ITS, ""),
        controlplane_uid=annotations[OWNER_CONTROLPLANE_UID],
        hosting_cluster=annotations.get(OWNER_HOSTING_CLUSTER, ""),
    )


def owner_conflict(recorded: HubOwner | None, me: HubOwner, recorded_alive: bool) -> str | None:
    """Why this ITS must not take the hub, or None. recorded_alive: the recorded ControlPlane still
    exists in this hosting cluster (only known when it is this one)."""
    if recorded is None or recorded.controlplane_uid == me.controlplane_uid:
        return None
    shared = f"two ITSes on one hub would share one inventory; give ITS {me.its} a space of its own"
    if recorded.hosting_cluster != me.hosting_cluster:
        return (
            f"the space is already the hub of ITS {recorded.its} of another hosting cluster (kube-system uid "
            f"{recorded.hosting_cluster}): {shared}, or, if that ITS is gone, remove the annotations "
            f"{OWNER_ITS}, {OWNER_CONTROLPLANE_UID} and {OWNER_HOSTING_CLUSTER} of ClusterManager {CM_NAME}"
        )
    if recorded_alive:
        return f"the space is already the hub of ITS {recorded.its} (ControlPlane {recorded.its}): {shared}"
    return None  # its ControlPlane is gone: the hub is free


def init_command(ocm: OcmSettings, hub: HubOptions, kubeconfig_path: str) -> list[str]:
    """clusteradm init with the hub's settings and options."""
    command = ["clusteradm", "init", "--kubeconfig", kubeconfig_path, "--bundle-version", ocm.bundle_version]
    if ocm.image_registry:
        command += ["--image-registry", ocm.image_registry]
    return command + hub_options.init_flags(hub)


# The images of the hub in its ClusterManager, which the operator deploys.
CLUSTERMANAGER_IMAGE_FIELDS = (
    "registrationImagePullSpec",
    "workImagePullSpec",
    "placementImagePullSpec",
    "addOnManagerImagePullSpec",
)


def clustermanager_pending(objects: dict[str, dict[str, Any]]) -> str | None:
    """None once the operator applied the hub and its controllers run: Applied alone means applied,
    not running (Progressing and the Degraded conditions hold until the hub's Deployments are available)."""
    cm = objects.get(CM_NAME)
    if cm is None:
        return f"ClusterManager {CM_NAME} does not exist"
    if condition_status(cm, "Applied") != "True":
        return f"ClusterManager not Applied ({condition_reason(cm, 'Applied') or 'no Applied condition yet'})"
    for cond_type, healthy in (
        ("Progressing", "False"),
        ("HubRegistrationDegraded", "False"),
        ("HubPlacementDegraded", "False"),
    ):
        status = condition_status(cm, cond_type)
        if status is not None and status != healthy:
            return f"ClusterManager {cond_type}={status} ({condition_reason(cm, cond_type)})"
    return None


def clusteradm_failure(result: subprocess.CompletedProcess[str], ocm: OcmSettings, verb: str) -> Exception:
    """A failed clusteradm init (or its dry run): permanent when it cannot install the bundle asked for,
    else worth another try."""
    if UNKNOWN_BUNDLE in (result.stderr or "") + (result.stdout or ""):
        return PermanentError(
            f"ocm.bundleVersion {ocm.bundle_version} is not a bundle the hook image's clusteradm can install "
            "(the chart's schema lists those it has)"
        )
    return TransientError(f"clusteradm {verb} exited {result.returncode}: {commands.output_tail(result)}")


def hub_exists(ctx: Context) -> bool:
    return ctx.space.client.get(kube.CLUSTERMANAGERS, CM_NAME) is not None  # None: no hub, or not even its CRD


def run_init(ctx: Context) -> None:
    ocm = ctx.config.ocm

    def attempt() -> None:
        with commands.private_files({"kubeconfig": ctx.space.kubeconfig}) as paths:
            ctx.info(
                "running clusteradm init",
                bundle_version=ocm.bundle_version,
                image_registry=ocm.image_registry or "clusteradm default",
            )
            result = commands.run(ctx, init_command(ocm, ctx.its.hub, paths["kubeconfig"]))
        if result.returncode != 0:
            raise clusteradm_failure(result, ocm, "init")

    ctx.retry(attempt, "clusteradm init", attempts=CLUSTERADM_ATTEMPTS)


def describe(settings: OcmSettings | None) -> str:
    if settings is None:
        return "no settings recorded"
    return f"imageRegistry={settings.image_registry or 'clusteradm default'} bundleVersion={settings.bundle_version}"


def recorded_settings(clustermanager: dict[str, Any]) -> OcmSettings | None:
    """The settings the hook last brought the hub to, as recorded on it (None: never recorded)."""
    annotations = (clustermanager.get("metadata") or {}).get("annotations") or {}
    if SETTINGS_BUNDLE not in annotations:
        return None
    return OcmSettings(image_registry=annotations.get(SETTINGS_REGISTRY, ""), bundle_version=annotations[SETTINGS_BUNDLE])


def rendered_hub(ctx: Context) -> list[dict[str, Any]]:
    """What `clusteradm init` would apply with the asked settings, as it renders it (--dry-run
    --output-file): nothing is written; its requests are server-side dry runs."""
    ocm = ctx.config.ocm
    with commands.private_files({"kubeconfig": ctx.space.kubeconfig, "hub.yaml": ""}) as paths:
        command = [*init_command(ocm, ctx.its.hub, paths["kubeconfig"]), "--dry-run", "--output-file", paths["hub.yaml"]]
        result = commands.run(ctx, command)
        if result.returncode != 0:
            raise clusteradm_failure(result, ocm, "init --dry-run")
        with open(paths["hub.yaml"]) as rendered:
            return [doc for doc in yaml.safe_load_all(rendered) if isinstance(doc, dict)]


def hub_images(docs: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    """The cluster-manager operator's image and the ClusterManager's image fields, of rendered docs."""
    operator = next(
        doc
        for doc in docs
        if doc.get("kind") == "Deployment" and (doc.get("metadata") or {}).get("name") == OPERATOR_DEPLOYMENT
    )
    clustermanager = next(doc for doc in docs if doc.get("kind") == "ClusterManager")
    spec = clustermanager.get("spec") or {}
    return operator["spec"]["template"]["spec"]["containers"][0]["image"], {
        field: spec[field] for field in CLUSTERMANAGER_IMAGE_FIELDS if field in spec
    }


def apply_settings(ctx: Context) -> None:
    """Bring a hub the hook installed to changed ocm.imageRegistry and ocm.bundleVersion: what
    `clusteradm upgrade clustermanager` does (it re-applies the operator and the ClusterManager, whose
    images alone differ for one clusteradm), which v0.8.1 refuses until the hub serves, so not for a hub
    whose images never ran. The images come from clusteradm's own rendering of the hub; the
    ClusterManager's feature gates and anything else stay. `clusteradm init` would reset the ClusterManager.
    A hub whose settings were never recorded (made before they were, or the run stopped before it
    recorded them) is brought to what is asked, which changes nothing when it already is."""
    recorded = recorded_settings(read_clustermanager(ctx))
    if recorded == ctx.config.ocm:
        return
    operator_image, images = hub_images(rendered_hub(ctx))
    space = ctx.space.client
    operator = space.get(kube.DEPLOYMENTS, OPERATOR_DEPLOYMENT, OPERATOR_NAMESPACE)
    if operator is None:
        raise PermanentError(f"the hub has no Deployment {OPERATOR_NAMESPACE}/{OPERATOR_DEPLOYMENT}")
    container = operator["spec"]["template"]["spec"]["containers"][0]
    changed = []
    if container.get("image") != operator_image:
        patch = {"spec": {"template": {"spec": {"containers": [{"name": container["name"], "image": operator_image}]}}}}
        space.patch(
            kube.DEPLOYMENTS, OPERATOR_DEPLOYMENT, patch, "setting the operator's image", OPERATOR_NAMESPACE, strategic=True
        )
        changed.append(f"Deployment {OPERATOR_DEPLOYMENT}")
    spec = read_clustermanager(ctx).get("spec") or {}
    if any(spec.get(field) != image for field, image in images.items()):
        space.patch(kube.CLUSTERMANAGERS, CM_NAME, {"spec": images}, "setting the ClusterManager's images")
        changed.append(f"ClusterManager {CM_NAME}")
    ctx.info(
        "brought the hub to its settings",
        was=describe(recorded),
        now=describe(ctx.config.ocm),
        changed=", ".join(changed) or "nothing",
    )


def record_settings(ctx: Context) -> None:
    """Record on the ClusterManager the ocm settings and hub options it now has, when they differ."""
    cm = read_clustermanager(ctx)
    ocm = ctx.config.ocm
    annotations = hub_options.record(ctx, cm)
    if recorded_settings(cm) != ocm:
        annotations |= {SETTINGS_REGISTRY: ocm.image_registry, SETTINGS_BUNDLE: ocm.bundle_version}
    if annotations:
        ctx.space.client.patch(
            kube.CLUSTERMANAGERS, CM_NAME, {"metadata": {"annotations": annotations}}, "recording the hub's settings"
        )


# What a user changes when the registry has none of OCM's images at the bundle's tag.
IMAGES_FIX = "ocm.imageRegistry must name a registry that holds OCM's images at the tag of ocm.bundleVersion"


def diagnose(ctx: Context) -> str | None:
    """The first of the hub's Deployments that is not available, and why: what a user acts on rather
    than a condition."""
    return workloads.why_not_available(
        ctx.space.client, OPERATOR_NAMESPACE, (OPERATOR_DEPLOYMENT,), IMAGES_FIX
    ) or workloads.why_not_available(ctx.space.client, HUB_NAMESPACE, HUB_DEPLOYMENTS, IMAGES_FIX)


def probe_webhooks(ctx: Context) -> None:
    """A server-side dry run of a ManagedCluster and a ManifestWork: OCM's admission webhooks judge
    both (failure policy Fail), so they succeed only once the webhooks answer. Nothing is stored.
    Until the webhooks serve, the API server answers 500 ("failed calling webhook"): retried."""
    cluster = {
        "apiVersion": "cluster.open-cluster-management.io/v1",
        "kind": "ManagedCluster",
        "metadata": {"generateName": "ks-its-webhook-probe-"},
        "spec": {"hubAcceptsClient": False},
    }
    work = {
        "apiVersion": "work.open-cluster-management.io/v1",
        "kind": "ManifestWork",
        "metadata": {"generateName": "ks-its-webhook-probe-"},
        "spec": {
            "workload": {
                "manifests": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "ks-its-webhook-probe", "namespace": "default"},
                    }
                ]
            }
        },
    }
    ctx.space.client.create(kube.MANAGEDCLUSTERS, cluster, dry_run="All")
    ctx.space.client.create(kube.MANIFESTWORKS, work, HUB_NAMESPACE, dry_run="All")


def wait_ready(ctx: Context) -> None:
    """Ready means serving: a WEC can register and receive work."""
    space = ctx.space.client
    explain = workloads.explainer("the OCM hub", functools.partial(diagnose, ctx))
    with workloads.deadline_explained(ctx, "the OCM hub", explain):
        space.wait(
            kube.CLUSTERMANAGERS,
            clustermanager_pending,
            "the ClusterManager to be applied and running",
            name=CM_NAME,
            explain=explain,
        )
        space.wait(
            kube.DEPLOYMENTS,
            functools.partial(workloads.deployments_pending, HUB_DEPLOYMENTS),
            "the hub's Deployments",
            HUB_NAMESPACE,
            explain=explain,
        )
    space.wait(kube.CRDS, functools.partial(crds_pending, HUB_CRDS), "hub CRDs Established")
    probe_webhooks(ctx)
    ctx.info("OCM hub serving", waited_s=round(ctx.deadline.elapsed(), 2))


def read_clustermanager(ctx: Context) -> dict[str, Any]:
    cm = ctx.space.client.get(kube.CLUSTERMANAGERS, CM_NAME)
    if cm is None:
        raise PermanentError(f"ClusterManager {CM_NAME} is gone")
    return cm


def controlplane_alive(ctx: Context, owner: HubOwner) -> bool:
    metadata = (ctx.hosting.get(kube.CONTROLPLANES, owner.its) or {}).get("metadata") or {}
    return bool(metadata.get("uid") == owner.controlplane_uid and not metadata.get("deletionTimestamp"))


def hosting_cluster(ctx: Context) -> str:
    """The hosting cluster's identity: the uid of its kube-system namespace, which lives as long as it does."""
    namespace = ctx.hosting.get(kube.NAMESPACES, "kube-system")
    if namespace is None:
        raise PermanentError("the hosting cluster has no namespace kube-system")
    return str(namespace["metadata"]["uid"])


def claim(ctx: Context) -> None:
    """Record this ITS as the hub's owner, unless it is already; fail if another live ITS is. The
    write is conditional on the ClusterManager's version: of two hooks claiming at once, one wins and
    the other decides again on what is there now."""
    me = HubOwner(its=ctx.its.name, controlplane_uid=ctx.space.controlplane_uid, hosting_cluster=hosting_cluster(ctx))
    while True:
        cm = read_clustermanager(ctx)
        recorded = recorded_owner(cm)
        if recorded == me:
            return
        alive = recorded is not None and recorded.hosting_cluster == me.hosting_cluster and controlplane_alive(ctx, recorded)
        conflict = owner_conflict(recorded, me, alive)
        if conflict is not None:
            raise PermanentError(conflict)
        patch = {"metadata": {"resourceVersion": cm["metadata"]["resourceVersion"], "annotations": me.annotations()}}
        if ctx.space.client.patch(kube.CLUSTERMANAGERS, CM_NAME, patch, "recording the hub's owner") is not None:
            ctx.info("recorded this ITS as the hub's owner", replaced=recorded.its if recorded else "nobody")
            return
        if ctx.deadline.expired():
            raise DeadlineExceeded(
                f"timed out after {ctx.deadline.elapsed():.0f}s recording the hub's owner: "
                f"ClusterManager {CM_NAME} changed at every try"
            )


def verify_owner(ctx: Context) -> None:
    recorded = recorded_owner(read_clustermanager(ctx))
    if recorded is None or recorded.controlplane_uid != ctx.space.controlplane_uid:
        owner = f"ITS {recorded.its}" if recorded else "no ITS"
        raise PermanentError(f"the hub records {owner} as its owner, not ITS {ctx.its.name}")


def no_hub(ctx: Context) -> PermanentError:
    if ctx.its.install_clusteradm:
        return PermanentError(f"the space has no ClusterManager {CM_NAME}")
    return PermanentError(
        f"install_clusteradm is false but the space has no ClusterManager {CM_NAME}: "
        "install OCM there first or set install_clusteradm to true"
    )


def ensure(ctx: Context) -> None:
    existed = hub_exists(ctx)
    if existed:
        ctx.info("ClusterManager exists; not running clusteradm init")
    elif ctx.its.install_clusteradm:
        run_init(ctx)
    else:
        raise no_hub(ctx)
    claim(ctx)  # before any change to an existing hub: it may be another ITS's
    if ctx.its.install_clusteradm:  # a hub the user brought is never changed
        if existed:
            hub_options.check(ctx, read_clustermanager(ctx))
            apply_settings(ctx)
        record_settings(ctx)
    wait_ready(ctx)
    if ctx.its.install_clusteradm:
        bootstrap_identity.ensure(ctx)
        hub_options.ensure_auto_approved(ctx)


def verify(ctx: Context) -> None:
    if not hub_exists(ctx):
        raise no_hub(ctx)
    verify_owner(ctx)
    if ctx.its.install_clusteradm:
        cm = read_clustermanager(ctx)
        if (recorded := recorded_settings(cm)) != ctx.config.ocm:
            raise PermanentError(f"the hub records {describe(recorded)}, not {describe(ctx.config.ocm)}")
        hub_options.check(ctx, cm)
    wait_ready(ctx)
    if ctx.its.install_clusteradm:
        bootstrap_identity.verify(ctx)


STEP = Step(
    name="ocm-hub",
    ensures="the OCM Cluster Manager runs in the space (clusteradm init, unless a hub exists or "
    "install_clusteradm is false, with the ITS's hub options), recording this ITS as its owner unless another "
    "live ITS is; a hub the hook installs is brought to changed ocm.imageRegistry and ocm.bundleVersion (the "
    "images clusteradm renders for them), refused if its hub options changed, and serves clusteradm 1.0's WEC "
    "bootstrap identity (ServiceAccount "
    f"{bootstrap_identity.NAMESPACE}/{bootstrap_identity.SERVICE_ACCOUNT}, ClusterRole {bootstrap_identity.CLUSTER_ROLE} "
    "and its binding), beside v0.8.1's",
    verified_by=(
        f"ClusterManager {CM_NAME} records this ITS as its owner, is applied and not Progressing or "
        "Degraded, the hub's Deployments available, every hub CRD Established, the admission webhooks "
        "answering a dry run, and (hub the hook installs) the release's ocm settings and the ITS's hub options "
        "recorded on it and clusteradm 1.0's bootstrap identity granting what a WEC's bootstrap needs"
    ),
    ensure=ensure,
    verify=verify,
)
