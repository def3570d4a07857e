"""Versions stated in more than one file must agree; `make lint` runs this and fails on a mismatch.

- the hook package's version (hooks/pyproject.toml) is the chart's appVersion, which tags the hook image;
- the chart's version (Chart.yaml) is what the README's install commands name;
- clusteradm: ci/versions.env (what the toolchain builds) is what the hook image builds
  (hooks/Dockerfile) and what the chart says it ships (Chart.yaml annotation).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def pinned(name: str) -> str:
    for line in (ROOT / "ci" / "versions.env").read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip()
    raise SystemExit(f"ci/versions.env has no {name}")


def dockerfile_arg(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", (ROOT / "hooks" / "Dockerfile").read_text(), re.MULTILINE)
    if not match:
        raise SystemExit(f"hooks/Dockerfile has no ARG {name}=<default>")
    return match.group(1)


def readme_value(pattern: str) -> str:
    match = re.search(pattern, (ROOT / "README.md").read_text())
    if not match:
        raise SystemExit(f"README.md has nothing that matches {pattern!r}")
    return match.group(1)


def statements() -> list[tuple[str, dict[str, str]]]:
    chart = yaml.safe_load((ROOT / "chart" / "Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "chart" / "values.yaml").read_text())
    addon_chart = yaml.safe_load((ROOT / "tests" / "charts" / "ocm-status-addon-chart" / "Chart.yaml").read_text())
    package = tomllib.loads((ROOT / "hooks" / "pyproject.toml").read_text())["project"]["version"]
    return [
        (
            "hook package version",
            {
                "hooks/pyproject.toml project.version": package,
                "chart/Chart.yaml appVersion": str(chart["appVersion"]),
                "chart/Chart.yaml annotations.artifacthub.io/images tag": yaml.safe_load(
                    chart["annotations"]["artifacthub.io/images"]
                )[0]["image"].rsplit(":", 1)[-1],
            },
        ),
        (
            "clusteradm version",
            {
                "ci/versions.env CLUSTERADM_VERSION": pinned("CLUSTERADM_VERSION"),
                "hooks/Dockerfile ARG CLUSTERADM_VERSION": dockerfile_arg("CLUSTERADM_VERSION"),
                "chart/Chart.yaml annotations.kubestellar.io/clusteradm-version": str(
                    (chart.get("annotations") or {}).get("kubestellar.io/clusteradm-version")
                ),
            },
        ),
        (
            "helm version of the hook image",
            {
                "ci/versions.env HELM3_VERSION": pinned("HELM3_VERSION"),
                "hooks/Dockerfile ARG HELM_VERSION": dockerfile_arg("HELM_VERSION"),
            },
        ),
        (
            "chart version",
            {
                "chart/Chart.yaml version": str(chart["version"]),
                "README.md helm upgrade --install --version": readme_value(r"/kubestellar-its --version (\S+)"),
                "README.md Argo CD Application targetRevision": readme_value(r"targetRevision: (\S+)"),
            },
        ),
        (
            "Argo CD version",
            {
                "ci/versions.env ARGOCD_VERSION": pinned("ARGOCD_VERSION"),
                "README.md Argo CD section": readme_value(r"against a real Argo CD (v[0-9.]+)"),
            },
        ),
        (
            "status add-on chart version",
            {
                "chart/values.yaml statusAddon.chart.version": str(values["statusAddon"]["chart"]["version"]),
                "ci/versions.env STATUS_ADDON_CHART_VERSION": pinned("STATUS_ADDON_CHART_VERSION"),
                "tests/charts/ocm-status-addon-chart/Chart.yaml version": str(addon_chart["version"]),
            },
        ),
    ]


def main() -> int:
    failed = False
    for what, places in statements():
        if len(set(places.values())) != 1:
            failed = True
            print(
                f"versions: the {what} differs: " + "; ".join(f"{where} = {value}" for where, value in places.items()),
                file=sys.stderr,
            )
    if not failed:
        print(f"versions: {len(statements())} versions agree across their files")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
