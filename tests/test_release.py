"""Release artifacts: `make release` to a registry (the sandbox's), then an install from there that
pulls the released hook image with no image value given; and `make help` lists every target."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.harness import APP_VERSION, CHART_VERSION, Sandbox, assert_ready_its, release, unique
from tests.sandbox.servers import REPO

OCI_KEYS = (
    "org.opencontainers.image.source",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.licenses",
)


def test_make_help_lists_every_target() -> None:
    makefile = (REPO / "Makefile").read_text()
    declared = re.search(r"^\.PHONY: (.*)$", makefile, re.MULTILINE)
    assert declared
    phony = set(declared.group(1).split())
    shown = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    listed = {line.split()[0] for line in shown.splitlines() if line.strip()}
    assert listed == phony
    for name in ("tools", "sandbox-up", "sandbox-down", "demo", "demo-down", "test", "bench", "image", "package", "release"):
        assert name in listed


def manifest_annotations(sandbox: Sandbox, reference: str) -> dict[str, str]:
    certs = Path(sandbox.state["registry_ca"]).parent
    raw = sandbox.run("skopeo", "inspect", "--raw", f"--cert-dir={certs}", f"docker://{reference}").stdout
    return dict(json.loads(raw).get("annotations") or {})


def test_a_release_installs_from_its_registry_with_the_released_hook_image(sandbox: Sandbox, tmp_path: Path) -> None:
    registry, ca = sandbox.registry, sandbox.state["registry_ca"]
    released = release(sandbox, tmp_path)
    assert released.returncode == 0, released.stdout + released.stderr
    assert (tmp_path / f"kubestellar-its-{CHART_VERSION}.tgz").exists()
    assert f"release: chart oci://{registry}/charts/kubestellar-its {CHART_VERSION}" in released.stdout

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    chart = manifest_annotations(sandbox, f"{registry}/charts/kubestellar-its:{CHART_VERSION}")
    assert {key: chart.get(key) for key in OCI_KEYS} == {
        "org.opencontainers.image.source": "https://github.com/kubestellar/kubestellar",
        "org.opencontainers.image.version": CHART_VERSION,
        "org.opencontainers.image.revision": head,
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    image = manifest_annotations(sandbox, f"{registry}/kubestellar/ks-its-hooks:{APP_VERSION}")
    assert image["org.opencontainers.image.version"] == APP_VERSION
    assert image["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert re.fullmatch(r"[0-9a-f]{40}", image["org.opencontainers.image.revision"])

    # No hook image value: the released chart names the released image. OCM's images and the status
    # add-on's chart still come from the sandbox's registry, as on any air-gapped site.
    namespace, name = unique("rel"), unique("rel-ext")
    sandbox.create_bootstrap_secret(f"{name}-bootstrap", namespace)
    sandbox.helm(
        "helm3",
        "upgrade",
        "--install",
        "ks-its",
        f"oci://{registry}/charts/kubestellar-its",
        "--version",
        CHART_VERSION,
        "--ca-file",
        ca,
        "--namespace",
        namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        "300s",
        *sandbox.image_values(hook_image=False),
        "--set-json",
        f'ITSes=[{{"name":"{name}","type":"external"}}]',
    )
    assert_ready_its(sandbox, name)
    pods = sandbox.core.list_namespaced_pod(namespace, label_selector="batch.kubernetes.io/job-name=ks-its-hook").items
    assert {pod.spec.containers[0].image for pod in pods} == {f"{registry}/kubestellar/ks-its-hooks:{APP_VERSION}"}
    sandbox.helm("helm3", "uninstall", "ks-its", "--namespace", namespace, "--wait")
