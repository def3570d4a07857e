"""Shared helpers for the stand-ins: admin clients and a resilient watch loop."""

from __future__ import annotations

import base64
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from .host import NODE_IP

T = TypeVar("T")


def api_client(kubeconfig_text: str) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))
    return api


def manifest(obj: dict[str, Any]) -> Any:
    """A manifest as the client's typed API classes take it: they send a dict as it is, though their
    annotations name their models."""
    return obj


def as_object(value: object) -> dict[str, Any]:
    """A custom object as the client returns it: a dict, though annotated `object`."""
    assert isinstance(value, dict), type(value)
    return value


def secret_text(secret: Any, key: str) -> str:
    """A key of a Secret read with the typed API, decoded."""
    return base64.b64decode((secret.data or {})[key]).decode()


def or_none(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """fn's result, or None when what it reads does not exist (404)."""
    try:
        return fn(*args, **kwargs)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def as_dict(api: client.ApiClient, obj: Any) -> dict[str, Any]:
    result: dict[str, Any] = api.sanitize_for_serialization(obj)
    return result


def run_watch(
    api: client.ApiClient,
    list_fn: Callable[..., Any],
    handle: Callable[[str, dict[str, Any]], None],
    stop: threading.Event,
    name: str,
    log: Callable[[str], None],
) -> None:
    """List then watch forever (until stop), calling handle(event_type, obj) for every object.

    Errors are logged and the loop lists again: a stand-in must survive its API server restarting.
    """
    while not stop.is_set():
        try:
            listed = as_dict(api, list_fn())
            for obj in listed.get("items") or []:
                handle("ADDED", obj)
            version = listed["metadata"].get("resourceVersion")
            while not stop.is_set():
                for event in watch.Watch().stream(list_fn, resource_version=version, timeout_seconds=5, _request_timeout=10):
                    obj = as_dict(api, event["object"])
                    version = obj.get("metadata", {}).get("resourceVersion") or version
                    handle(event["type"], obj)
                    if stop.is_set():
                        return
        except ApiException as err:
            if err.status not in (404, 410):
                log(f"{name}: watch error {err.status} {err.reason}")
            time.sleep(0.5)
        except Exception as err:
            if not stop.is_set():
                log(f"{name}: {type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}")
            time.sleep(0.5)


def front_service(api: client.ApiClient, namespace: str, name: str, port: int) -> str:
    """Service `name` on port 443 in front of a server of the node (its address, `port`), as the
    vcluster chart puts a Service in front of its pod; returns the ClusterIP pods reach it at."""
    core = client.CoreV1Api(api)
    service = {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port, "protocol": "TCP"}]},
    }
    try:
        created = core.create_namespaced_service(namespace, manifest(service))
    except ApiException as err:
        if err.status != 409:
            raise
        created = core.read_namespaced_service(name, namespace)
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-node",
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "ks-its-sandbox"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_IP]}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
    client.DiscoveryV1Api(api).patch_namespaced_endpoint_slice(
        f"{name}-node",
        namespace,
        slice_,
        field_manager="ks-its-sandbox",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    return str(created.spec.cluster_ip)
