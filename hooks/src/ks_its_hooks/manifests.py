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


def render_all(template: str, **values: Any) -> list[dict[str, Any]]:
    """Every document of the template, in order."""
    documents = [doc for doc in yaml.safe_load_all(_env.get_template(template).render(**values)) if doc is not None]
    if not documents or not all(isinstance(doc, dict) for doc in documents):
        raise ValueError(f"{template} did not render mappings")
    return documents


def render(template: str, **values: Any) -> dict[str, Any]:
    """The template's one document."""
    documents = render_all(template, **values)
    if len(documents) != 1:
        raise ValueError(f"{template} rendered {len(documents)} documents, not one")
    return documents[0]
