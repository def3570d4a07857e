"""Stand-in for the OCM cluster-manager operator, one per API server that can host a hub.

The real `clusteradm init` applies the operator Deployment, the ClusterManager CRD and the
ClusterManager `cluster-manager`. With no kubelet to run the operator, this does what it does next:
creates namespace open-cluster-management-hub and the hub CRDs (read from the
open-cluster-management.io/api Go module, not hand-written), and sets the ClusterManager
conditions (Applied/ClusterManagerApplied, HubRegistrationDegraded, HubPlacementDegraded,
Progressing) as the operator does once everything is applied. When a ManagedCluster is accepted
(spec.hubAcceptsClient), it creates the cluster's mailbox namespace, as the registration controller does.

Faults (same ConfigMap as the KubeFlex stand-in, key "ocm"): apply_delay_s.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .kube import api_client, condition, run_watch
from .servers import ApiServer, module_dir, pinned, tool

CM = ("operator.open-cluster-management.io", "v1", "clustermanagers")
MC = ("cluster.open-cluster-management.io", "v1", "managedclusters")
HUB_CRD_FILES = (
    "cluster/v1/*managedclusters.crd.yaml",
    "cluster/v1beta2/*managedclustersets.crd.yaml",
    "cluster/v1beta2/*managedclustersetbindings.crd.yaml",
    "cluster/v1beta1/*placements.crd.yaml",
    "cluster/v1beta1/*placementdecisions.crd.yaml",
    "cluster/v1alpha1/*addonplacementscores.crd.yaml",
    "work/v1/*manifestworks.crd.yaml",
    "work/v1alpha1/*manifestworkreplicasets.crd.yaml",
    "addon/v1alpha1/*.crd.yaml",
)


def hub_crd_files() -> list[Path]:
    root = module_dir("open-cluster-management.io/api", pinned("OCM_API_VERSION"))
    files = sorted({path for pattern in HUB_CRD_FILES for path in root.glob(pattern)})
    if len(files) < 10:
        raise RuntimeError(f"hub CRD files not found under {root}")
    return files


class ClusterManagerStandIn:
    def __init__(self, apiserver: ApiServer, faults: Callable[[], dict[str, Any]], log: Callable[[str], None]) -> None:
        self.apiserver = apiserver
        self.faults = faults
        self.log = log
        self.api = api_client(apiserver.admin_kubeconfig())
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self._watching: set[str] = set()

    def run(self, stop: threading.Event) -> None:
        ext = client.ApiextensionsV1Api(self.api)
        run_watch(self.api, ext.list_custom_resource_definition, lambda e, crd: self._on_crd(crd, stop), stop,
                  f"ocm({self.apiserver.name})", self.log)

    def _on_crd(self, crd: dict[str, Any], stop: threading.Event) -> None:
        name = crd["metadata"]["name"]
        established = any(c.get("type") == "Established" and c.get("status") == "True"
                          for c in (crd.get("status") or {}).get("conditions") or [])
        if not established or name in self._watching:
            return
        if name == f"{CM[2]}.{CM[0]}":
            target: Callable[[str, dict[str, Any]], None] = self._on_clustermanager
            group, version, plural = CM
        elif name == f"{MC[2]}.{MC[0]}":
            target, (group, version, plural) = self._on_managedcluster, MC
        else:
            return
        self._watching.add(name)

        def list_fn(**kw: Any) -> Any:
            return self.custom.list_cluster_custom_object(group, version, plural, **kw)

        threading.Thread(target=run_watch, args=(self.api, list_fn, target, stop, f"ocm-{plural}", self.log),
                         daemon=True, name=f"ocm-{plural}-{self.apiserver.name}").start()

    def _on_clustermanager(self, event: str, cm: dict[str, Any]) -> None:
        if event == "DELETED" or cm["metadata"].get("deletionTimestamp"):
            return
        status = cm.get("status") or {}
        applied = any(c.get("type") == "Applied" and c.get("status") == "True" for c in status.get("conditions") or [])
        if applied and status.get("observedGeneration") == cm["metadata"].get("generation"):
            return
        time.sleep(float(self.faults().get("apply_delay_s", 0)))
        try:
            self.core.create_namespace({"metadata": {"name": "open-cluster-management-hub"}})
        except ApiException as err:
            if err.status != 409:
                raise
        kubeconfig = self.apiserver.dir / "admin.kubeconfig"
        argv = [tool("kubectl"), "--kubeconfig", str(kubeconfig), "apply", "--server-side",
                "--field-manager=cluster-manager", "-o", "name"]
        for path in hub_crd_files():
            argv += ["-f", str(path)]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
        conditions = [
            condition("Applied", True, "ClusterManagerApplied", "Components of cluster manager are applied"),
            condition("HubRegistrationDegraded", False, "RegistrationFunctional", "Registration is managing credentials"),
            condition("HubPlacementDegraded", False, "PlacementFunctional", "Placement is scheduling placement decisions"),
            condition("Progressing", False, "ClusterManagerUpToDate", "Components of cluster manager are up to date"),
        ]
        self.custom.patch_cluster_custom_object_status(
            *CM, cm["metadata"]["name"],
            {"status": {"observedGeneration": cm["metadata"].get("generation", 1), "conditions": conditions}},
            _content_type="application/merge-patch+json")
        self.log(f"ocm({self.apiserver.name}): ClusterManager {cm['metadata']['name']} Applied")

    def _on_managedcluster(self, event: str, mc: dict[str, Any]) -> None:
        name = mc["metadata"]["name"]
        if event == "DELETED" or not (mc.get("spec") or {}).get("hubAcceptsClient"):
            return
        try:
            self.core.create_namespace({"metadata": {"name": name}})
            self.log(f"ocm({self.apiserver.name}): ManagedCluster {name} accepted; mailbox namespace created")
        except ApiException as err:
            if err.status != 409:
                raise
        conditions = (mc.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "HubAcceptedManagedCluster" for c in conditions):
            self.custom.patch_cluster_custom_object_status(
                *MC, name,
                {"status": {"conditions": [*conditions, condition("HubAcceptedManagedCluster", True,
                                                                  "HubClusterAdminAccepted", "Accepted by hub")]}},
                _content_type="application/merge-patch+json")
