"""Step `status-addon`: KubeStellar's OCM status add-on, installed into the space with helm as
upstream's core chart does (release `status-addon` in `open-cluster-management`), once the CRDs it
needs are Established and its registry has the chart (registry.py); then wait until its controller runs.

A re-run on a ready ITS makes no write: the deployed release's chart, version and values are read
first, and helm is called only when they differ or the release is not deployed.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import commands, kube, workloads
from .errors import DeadlineExceeded, PermanentError, TransientError
from .readiness import crds_pending
from .registry import Registry
from .spec import StatusAddonSettings
from .step import Context, Step

T = TypeVar("T")

RELEASE, NAMESPACE = "status-addon", "open-cluster-management"
CONTROLLER_DEPLOYMENT = "addon-status-controller"
ADDON = "addon-status"
# What the add-on chart creates besides its own kinds (upstream waits for exactly these two).
NEEDED_CRDS = ("placements.cluster.open-cluster-management.io", "managedclustersetbindings.cluster.open-cluster-management.io")
# The ManagedClusterSet the add-on's Placement `global` selects: the hub's registration controller
# makes it when its DefaultClusterSet feature is on (as on every hub clusteradm init makes).
CLUSTER_SET = "global"
NO_CLUSTER_SET = (
    f"the hub has no ManagedClusterSet {CLUSTER_SET}, which the status add-on's Placement selects (without it "
    "the add-on reaches no WEC): turn on the DefaultClusterSet feature of the hub's registration "
    "(ClusterManager spec.registrationConfiguration.featureGates), then run the hook again (helm upgrade)"
)
# What a user changes when the registry has no image of the add-on's controller.
IMAGES_FIX = "the add-on chart's image must be in a registry the nodes pull from (statusAddon.values for a mirror)"


@dataclass(frozen=True)
class Release:
    """The deployed release as `helm list` and `helm get values` show it."""

    status: str
    chart: str
    revision: int
    values: dict[str, Any]


def chart_name(settings: StatusAddonSettings) -> str:
    return settings.chart.rstrip("/").rsplit("/", 1)[-1]


def up_to_date(release: Release | None, settings: StatusAddonSettings) -> str | None:
    """None when the deployed release is what the settings ask for, else what differs."""
    if release is None:
        return "not installed"
    if release.status != "deployed":
        return f"release status is {release.status}"
    wanted = f"{chart_name(settings)}-{settings.version}"
    if release.chart != wanted:
        return f"release is {release.chart}, not {wanted}"
    if release.values != settings.values:
        return "release values differ"
    return None


def registry_config(secret: dict[str, Any] | None, key: str) -> str | None:
    """The registry credentials (Docker config JSON) of the pull Secret, for helm's --registry-config."""
    if secret is None:
        return None
    data = (secret.get("data") or {}).get(key)
    if not data:
        raise PermanentError(f"the pull Secret has no key {key}")
    return base64.b64decode(data).decode()


def upgrade_command(settings: StatusAddonSettings, files: dict[str, str]) -> list[str]:
    command = [
        "helm",
        "upgrade",
        "--install",
        RELEASE,
        settings.chart,
        "--version",
        settings.version,
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--kubeconfig",
        files["kubeconfig"],
        "--values",
        files["values.json"],
    ]
    if settings.plain_http:
        command.append("--plain-http")
    if "ca.crt" in files:
        command += ["--ca-file", files["ca.crt"]]
    if "registry.json" in files:
        command += ["--registry-config", files["registry.json"]]
    return command


class Helm:
    """helm against one space, each run with private files and its own empty helm home."""

    def __init__(self, ctx: Context, registry_json: str | None) -> None:
        self.ctx = ctx
        self.settings = ctx.config.status_addon
        self.registry_json = registry_json

    def run(self, what: str, *args: str, values: dict[str, Any] | None = None) -> str:
        files = {"kubeconfig": self.ctx.space.kubeconfig}
        if values is not None:
            files["values.json"] = json.dumps(values)
            if self.settings.ca_bundle:
                files["ca.crt"] = self.settings.ca_bundle
            if self.registry_json is not None:
                files["registry.json"] = self.registry_json
        with commands.private_files(files) as paths:
            home = paths["kubeconfig"].rsplit("/", 1)[0]
            env = {f"HELM_{kind}_HOME": f"{home}/helm-{kind.lower()}" for kind in ("CACHE", "CONFIG", "DATA")}
            command = (
                upgrade_command(self.settings, paths)
                if values is not None
                else ["helm", *args, "--namespace", NAMESPACE, "--kubeconfig", paths["kubeconfig"]]
            )
            result = commands.run(self.ctx, command, env)
        if result.returncode != 0:
            # The chart's registry was asked first (registry.py): what fails here is worth another try.
            raise TransientError(f"helm {what} exited {result.returncode}: {commands.output_tail(result)}")
        return result.stdout

    def release(self) -> Release | None:
        listed = json.loads(self.run("list", "list", "--all", "--filter", f"^{RELEASE}$", "--output", "json") or "[]")
        if not listed:
            return None
        values = json.loads(self.run("get values", "get", "values", RELEASE, "--output", "json") or "null")
        entry = listed[0]
        return Release(
            status=entry.get("status", ""),
            chart=entry.get("chart", ""),
            revision=int(entry.get("revision", 0)),
            values=values or {},
        )


def wait_for_crds(ctx: Context) -> None:
    ctx.space.client.wait(kube.CRDS, functools.partial(crds_pending, NEEDED_CRDS), "the CRDs the status add-on needs")


def addon_pending(objects: dict[str, dict[str, Any]]) -> str | None:
    return None if ADDON in objects else f"ClusterManagementAddOn {ADDON} does not exist"


def cluster_set_pending(objects: dict[str, dict[str, Any]]) -> str | None:
    return None if CLUSTER_SET in objects else f"ManagedClusterSet {CLUSTER_SET} does not exist"


def check_cluster_set(ctx: Context) -> None:
    """A hub the hook installed makes it soon after it serves: waited for. A hub the user brought
    has had its chance: missing, it fails at once."""
    if ctx.its.install_clusteradm:
        what = f"ManagedClusterSet {CLUSTER_SET}"
        ctx.space.client.wait(kube.MANAGEDCLUSTERSETS, cluster_set_pending, what, name=CLUSTER_SET)
    elif ctx.space.client.get(kube.MANAGEDCLUSTERSETS, CLUSTER_SET) is None:
        raise PermanentError(NO_CLUSTER_SET)


def wait_running(ctx: Context) -> None:
    workloads.wait_available(ctx, NAMESPACE, (CONTROLLER_DEPLOYMENT,), "the status add-on controller", IMAGES_FIX)
    ctx.space.client.wait(kube.CLUSTERMANAGEMENTADDONS, addon_pending, f"ClusterManagementAddOn {ADDON}", name=ADDON)


def pull_credentials(ctx: Context) -> str | None:
    ref = ctx.config.status_addon.pull_secret
    if ref is None:
        return None
    secret = ctx.hosting.get(kube.SECRETS, ref.name, ref.namespace)
    if secret is None:
        raise PermanentError(f"the pull Secret {ref.namespace}/{ref.name} (statusAddon.chart.pullSecret) does not exist")
    return registry_config(secret, ref.key)


def in_time(ctx: Context, fn: Callable[[], T], what: str) -> T:
    """fn, retried like every call. Retries stop only for lack of time, so a transient failure that
    is still there is the deadline's failure, and the message names its cause (the registry)."""
    try:
        return ctx.retry(fn, what)
    except TransientError as err:
        raise DeadlineExceeded(f"timed out after {ctx.deadline.elapsed():.0f}s: {err}") from err


def ensure(ctx: Context) -> None:
    if not ctx.its.install_status_addon:
        ctx.info("install_status_addon is false; not installing the status add-on")
        return
    settings = ctx.config.status_addon
    wait_for_crds(ctx)
    check_cluster_set(ctx)
    helm = Helm(ctx, pull_credentials(ctx))
    release = in_time(ctx, helm.release, "reading the status add-on release")
    differs = up_to_date(release, settings)
    if differs is None:
        ctx.info("status add-on release is up to date; not running helm", chart=settings.chart, version=settings.version)
    else:
        if release is not None and release.status.startswith("pending-"):
            # A hook pod killed during helm's run leaves the release locked; only this hook writes it.
            ctx.warn("status add-on release was left pending; rolling it back", status=release.status)
            undo = ("rollback", RELEASE) if release.revision > 1 else ("uninstall", RELEASE, "--wait")
            ctx.retry(lambda: helm.run(undo[0], *undo), f"helm {undo[0]} of a pending release")
        ctx.info("installing the status add-on", chart=settings.chart, version=settings.version, reason=differs)
        chart = Registry(settings, helm.registry_json, timeout=max(1.0, min(10.0, ctx.deadline.remaining())))
        in_time(ctx, chart.check, f"asking the chart registry {chart.ref.host} for the chart")
        in_time(ctx, lambda: helm.run("upgrade --install", values=settings.values), "helm upgrade --install")
    wait_running(ctx)
    ctx.info("status add-on running", waited_s=round(ctx.deadline.elapsed(), 2))


def verify(ctx: Context) -> None:
    if not ctx.its.install_status_addon:
        return
    release = in_time(ctx, Helm(ctx, None).release, "reading the status add-on release")
    differs = up_to_date(release, ctx.config.status_addon)
    if differs is not None:
        raise PermanentError(f"status add-on release {NAMESPACE}/{RELEASE}: {differs}")
    check_cluster_set(ctx)
    wait_running(ctx)


STEP = Step(
    name="status-addon",
    ensures=f"KubeStellar's OCM status add-on runs in the space (helm release {NAMESPACE}/{RELEASE}, unless "
    f"install_status_addon is false), installed only once the CRDs it needs are Established and the hub has "
    f"ManagedClusterSet {CLUSTER_SET}",
    verified_by=f"release {RELEASE} deployed with the configured chart, version and values, ManagedClusterSet "
    f"{CLUSTER_SET} present, Deployment {CONTROLLER_DEPLOYMENT} available, and ClusterManagementAddOn {ADDON} present",
    ensure=ensure,
    verify=verify,
)
