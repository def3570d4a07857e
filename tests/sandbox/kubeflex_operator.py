"""The real KubeFlex operator, installed the way users install it: `helm upgrade --install` of the
chart `kubeflex-operator` v0.9.3 from an OCI registry (upstream: oci://ghcr.io/kubestellar/kubeflex/chart).

The chart is made as upstream's release makes it from the module's skeleton `chart/` (the manager's
image set, the CRDs added under crds/, packaged as v0.9.3), with the changes this machine forces, each
checked so that a different skeleton fails loudly (README "Stand-ins" lists them):
- no init container `wait-postgresql`: it waits for a PostgreSQL pod whatever installPostgreSQL says,
  and the types the chart's ITSes use never touch PostgreSQL;
- the manager trusts the sandbox's CA (SSL_CERT_FILE, from ConfigMap sandbox-ca): it downloads the
  vcluster chart from https://charts.loft.sh, which the sandbox serves (loft.py).
The operator then runs as a pod with the chart's ServiceAccount and RBAC, nothing more.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .host import NODE_IP
from .servers import module_dir, pinned, tool

NAMESPACE = "kubeflex-system"
RELEASE = "kubeflex-operator"
REPOSITORY = "kubestellar/kubeflex/chart"
CA_CONFIGMAP = "sandbox-ca"
CA_MOUNT = "/etc/sandbox-ca"


def version() -> str:
    return pinned("KUBEFLEX_VERSION")


def image() -> str:
    return f"ghcr.io/kubestellar/kubeflex/manager:{version().removeprefix('v')}"


def _edit(text: str, old: str, new: str, what: str) -> str:
    if text.count(old) != 1:
        raise RuntimeError(f"KubeFlex's chart skeleton changed: cannot {what}")
    return text.replace(old, new)


def make_chart(work: Path) -> Path:
    """The chart directory, made from the module's skeleton."""
    module = module_dir("github.com/kubestellar/kubeflex", version())
    chart = work / "kubeflex-operator"
    shutil.copytree(module / "chart", chart)
    for path in chart.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the module cache is read-only
    shutil.copytree(module / "config" / "crd" / "bases", chart / "crds")
    for path in (chart / "crds").rglob("*"):
        path.chmod(0o644)
    meta = chart / "Chart.yaml"
    text = meta.read_text()
    text = _edit(text, "version: 0.1.0", f"version: {version()}", "set the chart version")
    text = _edit(text, "appVersion: 0.1.0", f"appVersion: {version()}", "set the app version")
    meta.write_text(text)
    operator = chart / "templates" / "operator.yaml"
    text = operator.read_text()
    text = _edit(text, "image: <placeholder>", f"image: {image()}", "set the manager's image")
    start = text.index("      initContainers:\n")
    end = text.index("      securityContext:\n        runAsNonRoot: true\n", start)
    if "wait-postgresql" not in text[start:end] or text[start:end].count("- args:") != 1:
        raise RuntimeError("KubeFlex's chart skeleton changed: cannot drop the init container wait-postgresql")
    text = text[:start] + text[end:]
    text = _edit(
        text,
        "        - name: HELM_CACHE_HOME\n          value: /tmp\n",
        "        - name: HELM_CACHE_HOME\n          value: /tmp\n"
        f"        - name: SSL_CERT_FILE\n          value: {CA_MOUNT}/ca.crt\n"
        f"        volumeMounts:\n        - name: {CA_CONFIGMAP}\n          mountPath: {CA_MOUNT}\n          readOnly: true\n",
        "give the manager the sandbox's CA",
    )
    text = _edit(
        text,
        "      terminationGracePeriodSeconds: 10\n",
        f"      terminationGracePeriodSeconds: 10\n      volumes:\n      - name: {CA_CONFIGMAP}\n"
        f"        configMap:\n          name: {CA_CONFIGMAP}\n",
        "add the CA volume",
    )
    operator.write_text(text)
    return chart


def install(kubeconfig: Path, registry: str, registry_ca: Path, sandbox_ca_pem: bytes, kubectl: list[str]) -> None:
    """Push the chart to the sandbox's registry and install it from there into kubeflex-system.
    hostContainer is the node's address: cmupdate writes https://<it>:<NodePort> into each vcluster
    space's cluster-info, which is how workload clusters reach the hub."""
    with tempfile.TemporaryDirectory(prefix="kubeflex-chart-") as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            **{f"HELM_{kind}_HOME": str(work / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")},
        }
        helm = [tool("helm")]

        def run(*argv: str) -> None:
            subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)

        run(*helm, "package", str(make_chart(work)), "--destination", str(work))
        archive = work / f"kubeflex-operator-{version()}.tgz"
        run(*helm, "push", str(archive), f"oci://{registry}/{REPOSITORY}", "--ca-file", str(registry_ca))
        (work / "ca.crt").write_bytes(sandbox_ca_pem)
        run(*kubectl, "create", "namespace", NAMESPACE)
        run(*kubectl, "create", "configmap", CA_CONFIGMAP, "-n", NAMESPACE, f"--from-file=ca.crt={work / 'ca.crt'}")
        run(
            *helm,
            "upgrade",
            "--install",
            RELEASE,
            f"oci://{registry}/{REPOSITORY}/kubeflex-operator",
            "--version",
            version(),
            "--ca-file",
            str(registry_ca),
            "-n",
            NAMESPACE,
            "--set",
            "installPostgreSQL=false",
            "--set",
            f"hostContainer={NODE_IP}",
            "--wait",
            "--timeout",
            "240s",
        )
