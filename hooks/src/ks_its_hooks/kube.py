"""Requests for built-in kinds as plain JSON, through the client's ApiClient: its configuration,
credentials, connection pool and errors (ApiException). Not through the client's typed API classes:
importing CoreV1Api and its like builds some 300 pydantic models and validators, about 0.8 s of CPU at
every hook start, for objects the hook reads as plain JSON anyway. Custom objects keep the client's
CustomObjectsApi, which builds no models."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

# The client's parameter names (what kubernetes.watch passes) and their names in the query.
QUERY_NAMES = {"watch": "watch", "resource_version": "resourceVersion", "timeout_seconds": "timeoutSeconds",
               "allow_watch_bookmarks": "allowWatchBookmarks", "field_selector": "fieldSelector",
               "label_selector": "labelSelector", "field_manager": "fieldManager",
               "propagation_policy": "propagationPolicy"}


@dataclass(frozen=True)
class Kind:
    """A built-in kind's resource: group_version is "v1" for the core group, else "<group>/<version>"."""

    group_version: str
    plural: str

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        path = ("/api/" if "/" not in self.group_version else "/apis/") + self.group_version
        if namespace is not None:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        return path + (f"/{name}" if name is not None else "")


CRDS = Kind("apiextensions.k8s.io/v1", "customresourcedefinitions")
DEPLOYMENTS = Kind("apps/v1", "deployments")
EVENTS = Kind("v1", "events")
JOBS = Kind("batch/v1", "jobs")
NAMESPACES = Kind("v1", "namespaces")
PODS = Kind("v1", "pods")
SECRETS = Kind("v1", "secrets")


def request(api: ApiClient, method: str, path: str, body: dict[str, Any] | None = None,
            preload: bool = True, request_timeout: Any = None, **query: Any) -> Any:
    """The response's JSON; with preload=False the urllib3 response, unread (a watch's stream).
    Raises ApiException for a status other than 2xx, as the typed API classes do."""
    headers = {"Accept": "application/json"} | ({"Content-Type": "application/json"} if body is not None else {})
    params = api.param_serialize(
        method=method, resource_path=path, header_params=headers, body=body, auth_settings=["BearerToken"],
        query_params=[(QUERY_NAMES[key], value) for key, value in query.items() if value is not None])
    response = api.call_api(*params, _request_timeout=request_timeout)
    if not 200 <= response.status <= 299:
        response.read()
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    if not preload:
        return response.response
    return cast(dict[str, Any], json.loads(response.read() or b"null"))


def get(api: ApiClient, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any]:
    return cast(dict[str, Any], request(api, "GET", kind.path(namespace, name)))


def create(api: ApiClient, kind: Kind, body: dict[str, Any], namespace: str | None = None,
           **query: Any) -> dict[str, Any]:
    return cast(dict[str, Any], request(api, "POST", kind.path(namespace), body=body, **query))


def delete(api: ApiClient, kind: Kind, name: str, namespace: str | None = None, **query: Any) -> dict[str, Any]:
    return cast(dict[str, Any], request(api, "DELETE", kind.path(namespace, name), **query))


def lister(api: ApiClient, kind: Kind, namespace: str | None = None) -> Callable[..., Any]:
    """A list function as the typed API classes have (the client's parameter names, _preload_content
    and _request_timeout), for readiness.plain and kubernetes.watch."""
    def list_objects(_preload_content: bool = True, _request_timeout: Any = None, **query: Any) -> Any:
        return request(api, "GET", kind.path(namespace), preload=_preload_content,
                       request_timeout=_request_timeout, **query)
    return list_objects
