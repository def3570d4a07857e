"""No token, kubeconfig or certificate in any hook log (issue 7). tests/run.py runs this module
after every other test of the run (conftest orders it last in a single session), so it reads the
logs of every hook pod of the run, kept by the sandbox under <sandbox>/logs/pods."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import yaml

from tests.harness import REPORTS, Sandbox

pytestmark = pytest.mark.reliability

# Shapes of credentials, whatever cluster they came from.
CREDENTIAL_SHAPES = {
    "PEM block": re.compile(r"-----BEGIN [A-Z ]+-----"),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"),
    "bootstrap token": re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b"),
    "kubeconfig credential": re.compile(
        r"(client-key-data|client-certificate-data|certificate-authority-data|token)"
        r"[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9+/=._-]{20,}"
    ),
}
# A secret value shorter than this is not searched for verbatim: it would match ordinary words.
MIN_SECRET_LENGTH = 16
KUBECONFIG_CREDENTIALS = ("certificate-authority-data", "client-certificate-data", "client-key-data", "token")


def kubeconfig_credentials(text: str) -> list[str]:
    """The credential fields of a kubeconfig, raw and (for *-data) decoded; [] if text is no kubeconfig."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    if not isinstance(config, dict) or config.get("kind") != "Config":
        return []
    values: list[str] = []
    for entry in (config.get("clusters") or []) + (config.get("users") or []):
        body = entry.get("cluster") or entry.get("user") or {}
        for key in KUBECONFIG_CREDENTIALS:
            if isinstance(body.get(key), str):
                values.append(body[key])
                if key.endswith("-data"):
                    values.append(base64.b64decode(body[key]).decode(errors="replace"))
    return values


def secret_needles(values: list[str]) -> set[str]:
    """What to search the logs for: each value, and each line of a multi-line one (a PEM body line
    leaked on its own is a leak too)."""
    needles: set[str] = set()
    for value in values:
        # Of a kubeconfig only the credentials: its other lines (server URL, names) are no secret.
        for candidate in kubeconfig_credentials(value) or [value]:
            for raw in [candidate, *candidate.splitlines()]:
                line = raw.strip()
                if len(line) >= MIN_SECRET_LENGTH and not line.startswith("-----"):
                    needles.add(line)
    return needles


def findings(text: str, needles: set[str]) -> list[str]:
    found = [
        f"{shape} at offset {match.start()}" for shape, pattern in CREDENTIAL_SHAPES.items() for match in pattern.finditer(text)
    ]
    found += [f"the value of a Secret ({needle[:4]}...)" for needle in needles if needle in text]
    return found


def cluster_secret_values(sandbox: Sandbox) -> list[str]:
    values: list[str] = []
    for secret in sandbox.core.list_secret_for_all_namespaces().items:
        for key, encoded in (secret.data or {}).items():
            # A namespace name (a token Secret's `namespace`: open-cluster-management, ...) is no secret.
            if key == "namespace":
                continue
            values.append(str(encoded))
            values.append(base64.b64decode(encoded).decode(errors="replace"))
    return values


def test_the_scanner_finds_each_kind_of_credential(sandbox: Sandbox) -> None:
    """Not vacuous: each shape and a real Secret value of this sandbox are caught."""
    kubeconfig = sandbox.kubeconfig.read_text()
    needles = secret_needles([*cluster_secret_values(sandbox), kubeconfig])
    ca_line = next(
        line
        for line in base64.b64decode(yaml.safe_load(kubeconfig)["clusters"][0]["cluster"]["certificate-authority-data"])
        .decode()
        .splitlines()
        if not line.startswith("-----")
    )
    for leak in [
        kubeconfig,
        ca_line,
        "join --hub-token abcdef.0123456789abcdef --hub-apiserver x",
        "token: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    ]:
        assert findings(f"level=info msg=x {leak} more", needles), leak
    assert not findings('time=2026-11-24T08:00:00Z level=info its=its1 step=ocm-hub msg="hub ready" elapsed_s=3.2', needles)


def test_no_credential_in_any_hook_log(sandbox: Sandbox) -> None:
    logs = sorted((sandbox.root / "logs" / "pods").glob("*.log"))
    hook_logs = [log for log in logs if log.stat().st_size]
    if not hook_logs:
        pytest.skip("no hook ran in this session: run the whole suite")
    kubeconfigs = [path.read_text() for path in Path(sandbox.root).glob("*kubeconfig")]
    needles = secret_needles(cluster_secret_values(sandbox) + kubeconfigs)
    leaks = {log.name: found for log in hook_logs if (found := findings(log.read_text(errors="replace"), needles))}
    assert not leaks, f"credentials in hook logs: {leaks}"
    size = sum(log.stat().st_size for log in hook_logs)
    REPORTS.append(
        f"secret scan: {len(hook_logs)} hook logs ({size // 1024} KiB) searched for {len(needles)} Secret "
        f"values and {len(CREDENTIAL_SHAPES)} credential shapes: none found"
    )
