"""Manifests render from the package's templates, strictly."""

from __future__ import annotations

import jinja2
import pytest
from ks_its_hooks.manifests import render


def test_a_missing_value_is_an_error_not_an_empty_string() -> None:
    # tojson meets the undefined value first and refuses it by name.
    with pytest.raises((jinja2.UndefinedError, TypeError), match="Undefined"):
        render("customization-properties.yaml.j2", name="x")


def test_values_are_quoted_so_yaml_cannot_reinterpret_them() -> None:
    manifest = render("customization-properties.yaml.j2", name="123", manager="true")
    assert manifest["metadata"]["name"] == "123"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "true"
