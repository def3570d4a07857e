"""Generate chart/README.md's values table from the `# --` comments in chart/values.yaml.

--write rewrites the table between the markers; --check fails if chart/README.md is out of date or if
a value has no description.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "chart" / "values.yaml"
README = ROOT / "chart" / "README.md"
START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"
KEY = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):(.*)$")


def documented(text: str) -> list[tuple[str, str]]:
    """(dotted key, description) for every key that has a `# --` comment right above it."""
    rows: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped[4:].strip()]
            continue
        if stripped.startswith("#") and comment is not None:
            comment.append(stripped[1:].strip())
            continue
        match = KEY.match(line)
        if not match:
            comment = None if not stripped.startswith("-") else comment
            continue
        indent = len(match.group(1))
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, match.group(2))]
        if comment is not None:
            rows.append((".".join(k for _, k in stack), " ".join(comment)))
        comment = None
    return rows


def leaf_keys(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values:
        return [key for name, child in values.items() for key in leaf_keys(child, f"{prefix}{name}.")]
    return [prefix.rstrip(".")]


def lookup(values: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        values = values[part]
    return values


def table() -> str:
    text = VALUES.read_text()
    values = yaml.safe_load(text)
    rows = documented(text)
    covered = {key for key, _ in rows}
    missing = [k for k in leaf_keys(values) if not any(k == c or k.startswith(c + ".") for c in covered)]
    if missing:
        raise SystemExit(f"values.yaml: no `# --` description for: {', '.join(missing)}")
    lines = ["| Key | Default | Description |", "|---|---|---|"]
    for key, description in rows:
        default = json.dumps(lookup(values, key), separators=(",", ":"))
        escaped = description.replace("|", r"\|")
        lines.append(f"| `{key}` | `{default}` | {escaped} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the table in chart/README.md")
    mode.add_argument("--check", action="store_true", help="fail if chart/README.md is out of date (the default)")
    args = parser.parse_args()
    readme = README.read_text()
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{START}\n{table()}\n{END}{tail}"
    if args.write:
        README.write_text(updated)
        return 0
    if updated != readme:
        print("chart/README.md values table is out of date with chart/values.yaml: run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
