"""What a user waits for, with the real OCM hub: from `helm upgrade --install` to every ITS ready (Helm
returns then: the hook waits for a hub that serves and the status add-on), to a WEC joined to each
ITS (its ManagedCluster Joined and Available), to the first ManifestWork applied on each WEC; and
what an ITS costs in memory (its API server, its controller-manager, its hub's pods)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.harness import CHART, Sandbox, pod_cgroup, wait_until, working_set
from tests.sandbox.host import Host
from tests.sandbox.kube import as_object


def pods_mb(sandbox: Sandbox, namespace: str) -> dict[str, float]:
    """Working set of each pod of a host namespace, by name."""
    memory = Path("/sys/fs/cgroup/memory") / Host(sandbox.root).kubelet_cgroup_root.lstrip("/")
    found = {}
    for pod in sandbox.core.list_namespaced_pod(namespace).items:
        with contextlib.suppress(OSError, ValueError):
            found[str(pod.metadata.name)] = working_set(pod_cgroup(memory, str(pod.metadata.uid))) / 2**20
    return found


def memory_per_its(sandbox: Sandbox, names: list[str]) -> dict[str, float]:
    """A vcluster ITS's memory: its space's pod (the stand-in vcluster's etcd, API server,
    controller-manager and syncer, where upstream's runs k3s and its syncer) and its hub's pods, which
    the syncer runs beside it in <name>-system."""
    space, hub = 0.0, 0.0
    for name in names:
        pods = pods_mb(sandbox, f"{name}-system")
        space += pods.pop("vcluster-0", 0.0)
        hub += sum(pods.values())
    return {
        "space_pod_mb": round(space / len(names)),
        "hub_pods_mb": round(hub / len(names)),
        "total_mb": round((space + hub) / len(names)),
    }


def joined_and_available(sandbox: Sandbox, its: str, wec: str) -> bool:
    cluster = as_object(
        client.CustomObjectsApi(sandbox.space_api(its)).get_cluster_custom_object(
            "cluster.open-cluster-management.io", "v1", "managedclusters", wec
        )
    )
    conditions = {c["type"]: c["status"] for c in (cluster.get("status") or {}).get("conditions") or []}
    return conditions.get("ManagedClusterJoined") == "True" and conditions.get("ManagedClusterConditionAvailable") == "True"


def deliver(sandbox: Sandbox, its: str, wec: str, kubeconfig: Path) -> None:
    hub = client.CustomObjectsApi(sandbox.space_api(its))
    work = {
        "apiVersion": "work.open-cluster-management.io/v1",
        "kind": "ManifestWork",
        "metadata": {"name": "bench", "namespace": wec},
        "spec": {
            "workload": {
                "manifests": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bench", "namespace": "default"}}]
            }
        },
    }
    hub.create_namespaced_custom_object("work.open-cluster-management.io", "v1", wec, "manifestworks", work)
    on_wec = client.CoreV1Api(sandbox.api_client_for(kubeconfig))
    end = time.monotonic() + 300
    while time.monotonic() < end:
        try:
            on_wec.read_namespaced_config_map("bench", "default")
            return
        except client.exceptions.ApiException:
            time.sleep(0.5)
    raise RuntimeError(f"the ManifestWork never reached WEC {wec}")


def one_run(sandbox: Sandbox, count: int, log: Any) -> dict[str, Any]:
    release, namespace = f"hubs{count}", f"hubs-{count}"
    names = [f"hub{count}-{index}" for index in range(count)]
    wecs = {name: sandbox.add_cluster(f"wec-{name}") for name in names}  # the WECs exist before: only ITS time counts
    started = time.monotonic()
    sandbox.helm(
        "helm3",
        "upgrade",
        "--install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        "30m",
        *sandbox.image_values(),
        "--set-json",
        f"ITSes={json.dumps([{'name': n} for n in names])}",
        timeout=1900,
    )
    serving = time.monotonic() - started
    joined: dict[str, float] = {}
    applied: dict[str, float] = {}
    errors: list[BaseException] = []

    def join_and_deliver(name: str) -> None:
        try:
            sandbox.join(f"wec-{name}", name, wecs[name])
            wait_until(
                f"ManagedCluster wec-{name} Joined and Available",
                lambda: joined_and_available(sandbox, name, f"wec-{name}"),
                timeout=300,
                interval=0.5,
            )
            joined[name] = time.monotonic() - started
            deliver(sandbox, name, f"wec-{name}", wecs[name])
            applied[name] = time.monotonic() - started
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=join_and_deliver, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    result = {
        "hub_serving_s": round(serving, 1),
        "wec_joined_s": round(max(joined.values()), 1),
        "first_work_applied_s": round(max(applied.values()), 1),
        "memory_per_its": memory_per_its(sandbox, names),
    }
    log(f"hubs {count}: {result}")
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait", "--timeout", "10m", timeout=700)
    for name in names:
        sandbox.remove_cluster(f"wec-{name}")
        sandbox.delete_controlplane(name)
    return result


def run(sandbox: Sandbox, counts: list[int], log: Any) -> dict[str, Any]:
    return {str(count): one_run(sandbox, count, log) for count in counts}
