"""Requests as plain JSON, built-in kinds and custom resources alike, through the client's ApiClient:
its configuration, credentials, connection pool and errors (ApiException). Not through the client's
typed API classes: importing CoreV1Api and its like builds some 300 pydantic models and validators,
about 0.8 s of CPU at every hook start, for objects the hook reads as plain JSON anyway. The retries,
not-found and waits are client.py's."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

# The client's parameter names (what kubernetes.watch passes) and their names in the query.
QUERY_NAMES = {
    "watch": "watch",
    "resource_version": "resourceVersion",
    "timeout_seconds": "timeoutSeconds",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "field_selector": "fieldSelector",
    "label_selector": "labelSelector",
    "field_manager": "fieldManager",
    "propagation_policy": "propagationPolicy",
    "dry_run": "dryRun",
    "force": "force",
}


@dataclass(frozen=True)
class Kind:
    """A resource: group_version is "v1" for the core group, else "<group>/<version>"; kind names it in
    what the hook logs."""

    group_version: str
    plural: str
    kind: str

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        path = ("/api/" if "/" not in self.group_version else "/apis/") + self.group_version
        if namespace is not None:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        return path + (f"/{name}" if name is not None else "")

    def describe(self, name: str, namespace: str | None = None) -> str:
        return f"{self.kind} {namespace}/{name}" if namespace else f"{self.kind} {name}"


CRDS = Kind("apiextensions.k8s.io/v1", "customresourcedefinitions", "CRD")
DEPLOYMENTS = Kind("apps/v1", "deployments", "Deployment")
EVENTS = Kind("v1", "events", "Event")
JOBS = Kind("batch/v1", "jobs", "Job")
NAMESPACES = Kind("v1", "namespaces", "namespace")
PODS = Kind("v1", "pods", "Pod")
SECRETS = Kind("v1", "secrets", "Secret")
SERVICEACCOUNTS = Kind("v1", "serviceaccounts", "ServiceAccount")
CLUSTERROLES = Kind("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole")
CLUSTERROLEBINDINGS = Kind("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding")
# KubeFlex's, and the OCM hub's.
CONTROLPLANES = Kind("tenancy.kflex.kubestellar.org/v1alpha1", "controlplanes", "ControlPlane")
CLUSTER_MANAGER = "cluster-manager"  # the one ClusterManager of a hub clusteradm makes
CLUSTERMANAGERS = Kind("operator.open-cluster-management.io/v1", "clustermanagers", "ClusterManager")
MANAGEDCLUSTERS = Kind("cluster.open-cluster-management.io/v1", "managedclusters", "ManagedCluster")
MANAGEDCLUSTERSETS = Kind("cluster.open-cluster-management.io/v1beta2", "managedclustersets", "ManagedClusterSet")
MANIFESTWORKS = Kind("work.open-cluster-management.io/v1", "manifestworks", "ManifestWork")
CLUSTERMANAGEMENTADDONS = Kind("addon.open-cluster-management.io/v1alpha1", "clustermanagementaddons", "ClusterManagementAddOn")


def request(
    api: ApiClient,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    preload: bool = True,
    request_timeout: Any = None,
    text: bool = False,
    content_type: str | None = None,
    **query: Any,
) -> Any:
    """The response's JSON (or its text, with text=True); with preload=False the urllib3 response,
    unread (a watch's stream). Raises ApiException for a status other than 2xx, as the typed API
    classes do."""
    headers = {"Accept": "*/*" if text else "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type or "application/json"
    params = api.param_serialize(
        method=method,
        resource_path=path,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
        query_params=[(QUERY_NAMES[key], value) for key, value in query.items() if value is not None],
    )
    response = api.call_api(*params, _request_timeout=request_timeout)
    if not 200 <= response.status <= 299:
        response.read()
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    if not preload:
        return response.response
    data = response.read()
    return data.decode() if text else json.loads(data or b"null")


def lister(api: ApiClient, kind: Kind, namespace: str | None = None) -> Callable[..., Any]:
    """A list function as the typed API classes have (the client's parameter names, _preload_content
    and _request_timeout), for readiness.wait_until and kubernetes.watch."""

    def list_objects(_preload_content: bool = True, _request_timeout: Any = None, **query: Any) -> Any:
        return request(api, "GET", kind.path(namespace), preload=_preload_content, request_timeout=_request_timeout, **query)

    return list_objects
