"""`make demo`: the sandbox, then the real user command, then what the user got.

python -m tests.demo up [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.harness import CHART_VERSION, Sandbox
from tests.sandbox.kube import api_client, as_object, manifest, or_none
from tests.sandbox.servers import BIN, REPO, StartError
from tests.sandbox.supervisor import DEFAULT_DIR, state, up

NAMESPACE = "kubeflex-system"
ITSES = '[{"name":"its1"},{"name":"its2","type":"host"},{"name":"its3","type":"external"}]'
# The pods of the release's hook Jobs (preflight, namespaces, hook), as NOTES selects them.
HOOK_PODS = "app.kubernetes.io/instance=ks-its,app.kubernetes.io/component in (preflight,hook)"


def user_command(current: dict[str, str]) -> list[str]:
    """What a user of a private registry runs, as upstream's README shows its OCI chart: the chart,
    the hook image, OCM's images and the status add-on's chart (the tests' stand-in) all from that
    registry, trusted through its CA."""
    registry, ca_file = current["registry"], current["registry_ca"]
    return [
        "helm",
        "upgrade",
        "--install",
        "ks-its",
        f"oci://{registry}/charts/kubestellar-its",
        "--version",
        CHART_VERSION,
        "--ca-file",
        ca_file,
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--wait",
        "--timeout",
        "15m",
        "--set",
        f"global.imageRegistry={registry}",
        "--set",
        f"ocm.imageRegistry={registry}/open-cluster-management",
        "--set",
        f"statusAddon.chart.repository={current['status_addon_chart']}",
        "--set-file",
        f"statusAddon.chart.caBundle={ca_file}",
        "--set",
        f"statusAddon.values.image={current['shell_image']}",
        "--set-json",
        f"ITSes={ITSES}",
    ]


def say(text: str) -> None:
    print(text, flush=True)


def bootstrap_secret(core: client.CoreV1Api, handle: Sandbox, env: dict[str, str]) -> None:
    """What a user does first for an external ITS: a Secret with the cluster's kubeconfig, valid
    inside the hosting cluster. KubeFlex deletes it after adoption, so a second demo finds
    admin-kubeconfig instead."""
    if or_none(core.read_namespaced_secret, "admin-kubeconfig", "its3-system") is not None:
        return
    subprocess.run([str(BIN / "kubectl"), "create", "namespace", NAMESPACE], env=env, capture_output=True, check=False)
    subprocess.run(
        [
            str(BIN / "kubectl"),
            "create",
            "secret",
            "generic",
            "its3-bootstrap",
            "-n",
            NAMESPACE,
            f"--from-file=kubeconfig-incluster={handle.external_incluster_kubeconfig}",
        ],
        env=env,
        capture_output=True,
        check=False,
    )


def publish_chart(env: dict[str, str], registry: str, ca_file: str, workdir: Path) -> None:
    """helm package and helm push, as a release of the chart does (make release)."""
    packaged = subprocess.run(
        [str(BIN / "helm"), "package", str(REPO / "chart"), "--destination", str(workdir)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    archive = packaged.rsplit(": ", 1)[1].strip()
    subprocess.run(
        [str(BIN / "helm"), "push", archive, f"oci://{registry}/charts", "--ca-file", ca_file],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )


def follow_hook_logs(core: client.CoreV1Api, stop: threading.Event) -> None:
    """Progress while helm waits: each hook pod's log lines as they come."""
    followed: set[str] = set()

    def follow(pod: str) -> None:
        with contextlib.suppress(Exception):
            stream: Any = core.read_namespaced_pod_log(pod, NAMESPACE, follow=True, _preload_content=False)
            for raw in stream.stream(decode_content=True):
                for line in raw.decode(errors="replace").splitlines():
                    say(f"  | {line}")

    while not stop.wait(0.5):
        with contextlib.suppress(ApiException):
            for pod in core.list_namespaced_pod(NAMESPACE, label_selector=HOOK_PODS).items:
                name = str(pod.metadata.name)
                if name not in followed and (pod.status.phase or "") in ("Running", "Succeeded", "Failed"):
                    followed.add(name)
                    threading.Thread(target=follow, args=(name,), daemon=True).start()


def condition(obj: dict[str, Any], cond_type: str) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == cond_type:
            return str(cond.get("status"))
    return "-"


def its_row(custom: client.CustomObjectsApi, name: str, handle: Sandbox) -> tuple[list[str], bool]:
    cp = as_object(custom.get_cluster_custom_object("tenancy.kflex.kubestellar.org", "v1alpha1", "controlplanes", name))
    ready = condition(cp, "Ready") == "True"
    hub, props, addon = "-", "-", "-"
    annotations = cp["metadata"].get("annotations") or {}
    took = "-"
    if "its.kubestellar.io/status-time" in annotations:
        created = time.mktime(time.strptime(cp["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))
        done = time.mktime(time.strptime(annotations["its.kubestellar.io/status-time"], "%Y-%m-%dT%H:%M:%SZ"))
        took = f"{done - created:.0f}s"
    if ready:
        text = handle.space_kubeconfig(name)
        path = handle.root / f"{name}.kubeconfig"
        path.write_text(text)
        path.chmod(0o600)
        space = api_client(text)
        try:
            cm = as_object(
                client.CustomObjectsApi(space).get_cluster_custom_object(
                    "operator.open-cluster-management.io", "v1", "clustermanagers", "cluster-manager"
                )
            )
            hub = "Applied" if condition(cm, "Applied") == "True" else "not applied"
        except ApiException:
            hub = "absent"
        try:
            client.CoreV1Api(space).read_namespace("customization-properties")
            props = "present"
        except ApiException:
            props = "absent"
        try:
            controller = client.AppsV1Api(space).read_namespaced_deployment(
                "addon-status-controller", "open-cluster-management"
            )
            addon = f"{controller.status.available_replicas or 0}/{controller.spec.replicas} available"
        except ApiException:
            addon = "absent"
    label = (cp["metadata"].get("labels") or {}).get("kflex.kubestellar.io/cptype", "-")
    ok = ready and hub == "Applied" and props == "present" and addon == "1/1 available" and label == "its"
    return [name, cp["spec"]["type"], "yes" if ready else "no", hub, addon, props, label, took], ok


def kubeflex_row(core: client.CoreV1Api, current: dict[str, Any]) -> str:
    """The KubeFlex operator every ITS's space comes from: its pod, image and chart."""
    pods = core.list_namespaced_pod("kubeflex-system", label_selector="control-plane=controller-manager").items
    if not pods:
        return "KubeFlex: no operator pod in kubeflex-system"
    pod = pods[0]
    image = next(c.image for c in pod.spec.containers if c.name == "manager")
    ready = all(s.ready for s in pod.status.container_statuses or [])
    return (
        f"KubeFlex {current['kubeflex_version']}: pod kubeflex-system/{pod.metadata.name} "
        f"{pod.status.phase}{'' if ready else ' (not ready)'}, image {image}, chart {current['kubeflex_chart']}"
    )


def show_wecs(handle: Sandbox) -> bool:
    """What an ITS is for: a workload cluster joins each (real clusteradm join and accept, the real
    klusterlet), a ManifestWork carries a ConfigMap to it, and the demo, as a KubeStellar user does,
    puts the WEC's ConfigMap of extra properties in customization-properties."""
    rows = [["ITS", "WEC", "JOINED", "AVAILABLE", "MAILBOX NAMESPACE", "CONFIGMAP ON THE WEC", "PROPERTIES"]]
    ok = True
    for its in ("its1", "its2", "its3"):
        wec = f"wec-{its}"
        say(f"demo: WEC {wec} joins {its} (clusteradm join, clusteradm accept) and receives a ManifestWork")
        kubeconfig = handle.add_cluster(wec)
        hub_api = handle.space_api(its)
        hub = client.CustomObjectsApi(hub_api)
        try:
            hub.get_cluster_custom_object("cluster.open-cluster-management.io", "v1", "managedclusters", wec)
        except ApiException:
            handle.join(wec, its, kubeconfig)
        work = {
            "apiVersion": "work.open-cluster-management.io/v1",
            "kind": "ManifestWork",
            "metadata": {"name": "demo", "namespace": wec},
            "spec": {
                "workload": {
                    "manifests": [
                        {
                            "apiVersion": "v1",
                            "kind": "ConfigMap",
                            "metadata": {"name": "from-its", "namespace": "default"},
                            "data": {"its": its},
                        }
                    ]
                }
            },
        }
        with contextlib.suppress(ApiException):
            hub.create_namespaced_custom_object("work.open-cluster-management.io", "v1", wec, "manifestworks", work)
        properties = {"metadata": {"name": wec, "namespace": "customization-properties"}, "data": {"region": "demo"}}
        with contextlib.suppress(ApiException):
            client.CoreV1Api(hub_api).create_namespaced_config_map("customization-properties", manifest(properties))
        on_wec = client.CoreV1Api(api_client(kubeconfig.read_text()))
        end, delivered = time.monotonic() + 120, "-"
        while time.monotonic() < end and delivered == "-":
            with contextlib.suppress(ApiException):
                delivered = f"from-its: its={(on_wec.read_namespaced_config_map('from-its', 'default').data or {})['its']}"
            time.sleep(1)
        cluster = as_object(hub.get_cluster_custom_object("cluster.open-cluster-management.io", "v1", "managedclusters", wec))
        joined, available = condition(cluster, "ManagedClusterJoined"), condition(cluster, "ManagedClusterConditionAvailable")
        mailbox = "present" if wec in {n.metadata.name for n in client.CoreV1Api(hub_api).list_namespace().items} else "-"
        props = "-"
        with contextlib.suppress(ApiException):
            client.CoreV1Api(hub_api).read_namespaced_config_map(wec, "customization-properties")
            props = "present"
        rows.append([its, wec, joined, available, mailbox, delivered, props])
        ok = ok and joined == available == "True" and mailbox == "present" and delivered != "-" and props == "present"
    say("")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.demo")
    parser.add_argument("command", choices=("up",))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    root = parser.parse_args().dir.resolve()
    say(f"demo: starting the sandbox in {root} (reused if it is running)")
    try:
        up(root)
    except StartError as err:
        print(f"demo: sandbox: {err}", file=sys.stderr)
        return 1
    current = state(root) or {}
    registry, ca_file = current["registry"], current["registry_ca"]
    api = api_client((root / "kubeconfig").read_text())
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    env = {
        **os.environ,
        "KUBECONFIG": str(root / "kubeconfig"),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HELM_CACHE_HOME": str(root / "helm-cache"),
        "HELM_CONFIG_HOME": str(root / "helm-config"),
        "HELM_DATA_HOME": str(root / "helm-data"),
    }
    publish_chart(env, registry, ca_file, root)
    say(
        f"demo: the chart is in the sandbox's registry, oci://{registry}/charts/kubestellar-its {CHART_VERSION}, "
        "with the hook image and OCM's images"
    )
    handle = Sandbox(root, api, root / "helm-home")
    bootstrap_secret(core, handle, env)
    command = user_command(current)
    say(f"demo: export KUBECONFIG={root / 'kubeconfig'}")
    say(f"demo: {shlex.join(command)}")
    stop = threading.Event()
    follower = threading.Thread(target=follow_hook_logs, args=(core, stop), daemon=True)
    follower.start()
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    time.sleep(0.5)
    stop.set()
    follower.join()
    if result.returncode != 0:
        say(result.stdout)
        print(result.stderr, file=sys.stderr)
    say(f"demo: helm finished in {time.monotonic() - started:.1f}s (exit {result.returncode})\n")
    header = ["ITS", "TYPE", "READY", "OCM HUB", "STATUS ADD-ON", "CUSTOMIZATION-PROPERTIES", "CPTYPE", "TIME TO READY"]
    rows, all_ok = [header], True
    for name in ("its1", "its2", "its3"):
        try:
            row, ok = its_row(custom, name, handle)
        except ApiException as err:
            row, ok = [name, "-", "no", "-", "-", "-", "-", f"error {err.status}"], False
        rows.append(row)
        all_ok = all_ok and ok
    say(kubeflex_row(core, current))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    if all_ok and result.returncode == 0:
        all_ok = show_wecs(handle)
    say("\nUse a space with kubectl (a kubeconfig for use on this machine):")
    for name in ("its1", "its2", "its3"):
        if (root / f"{name}.kubeconfig").exists():
            say(f"  kubectl --kubeconfig {root / (name + '.kubeconfig')} get managedclusters,namespaces")
    say(f"\nThe hosting cluster: KUBECONFIG={root / 'kubeconfig'} kubectl get controlplanes")
    say("The sandbox keeps running; stop it with: make demo-down")
    if not all_ok or result.returncode != 0:
        print("demo: not every ITS is ready (see the table and the hook log above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
