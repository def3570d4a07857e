"""Manifests the hook writes, rendered from jinja2 templates shipped in the package."""

from __future__ import annotations

from typing import Any

import jinja2
import yaml

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("ks_its_hooks", "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - YAML, not HTML; every value goes through tojson
    keep_trailing_newline=True,
)


def render(template: str, **values: Any) -> dict[str, Any]:
    document = yaml.safe_load(_env.get_template(template).render(**values))
    if not isinstance(document, dict):
        raise ValueError(f"{template} did not render a mapping")
    return document
