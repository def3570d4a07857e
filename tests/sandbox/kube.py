"""Shared helpers for the stand-ins: admin clients and a resilient watch loop."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException


def api_client(kubeconfig_text: str) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config_dict(yaml.safe_load(kubeconfig_text))
    return api


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
                for event in watch.Watch().stream(list_fn, resource_version=version, timeout_seconds=5,
                                                  _request_timeout=10):
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


def condition(cond_type: str, status: bool, reason: str, message: str = "") -> dict[str, str]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"type": cond_type, "status": "True" if status else "False", "reason": reason, "message": message,
            "lastTransitionTime": now, "lastUpdateTime": now}
