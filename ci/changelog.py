"""The chart's `artifacthub.io/changes` annotation is CHANGELOG.md's section for the chart's version.

--write rewrites the annotation from CHANGELOG.md; --check (the default) fails when it is stale, or
when CHANGELOG.md has no section for the chart's version.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHANGELOG = ROOT / "CHANGELOG.md"
CHART = ROOT / "chart" / "Chart.yaml"
# Keep a Changelog's headings and Artifact Hub's kinds are the same six words.
KINDS = ("added", "changed", "deprecated", "removed", "fixed", "security")
ANNOTATION = re.compile(r"(  artifacthub\.io/changes: \|\n)((?:    .*\n)+)")


def changes(text: str, version: str) -> list[dict[str, str]]:
    section = re.search(rf"^## \[{re.escape(version)}\][^\n]*\n(.*?)(?=^## \[|\Z)", text, re.MULTILINE | re.DOTALL)
    if section is None:
        raise SystemExit(f"CHANGELOG.md has no section `## [{version}]` for the chart's version")
    entries: list[dict[str, str]] = []
    kind = None
    for line in section.group(1).splitlines():
        if line.startswith("### "):
            kind = line[4:].strip().lower()
            if kind not in KINDS:
                raise SystemExit(f"CHANGELOG.md [{version}]: `{line}` is not one of Keep a Changelog's headings")
        elif line.startswith("- "):
            if kind is None:
                raise SystemExit(f"CHANGELOG.md [{version}]: an entry before any `### ` heading")
            entries.append({"kind": kind, "description": line[2:].strip()})
    if not entries:
        raise SystemExit(f"CHANGELOG.md [{version}] lists no change")
    return entries


def annotation(entries: list[dict[str, str]]) -> str:
    text = yaml.safe_dump(entries, sort_keys=False, width=10_000, allow_unicode=True)
    return "".join(f"    {line}\n" for line in text.splitlines())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="rewrite the annotation in chart/Chart.yaml")
    args = parser.parse_args()
    chart_text = CHART.read_text()
    version = str(yaml.safe_load(chart_text)["version"])
    wanted = annotation(changes(CHANGELOG.read_text(), version))
    match = ANNOTATION.search(chart_text)
    if match is None:
        raise SystemExit("chart/Chart.yaml has no `artifacthub.io/changes: |` annotation")
    if args.write:
        CHART.write_text(chart_text[: match.start(2)] + wanted + chart_text[match.end(2) :])
        return 0
    if match.group(2) != wanted:
        print("chart/Chart.yaml artifacthub.io/changes is out of date with CHANGELOG.md: run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
