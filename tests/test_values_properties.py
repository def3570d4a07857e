"""Property-based tests of the `ITSes` value (issue 7): every value the chart accepts renders manifests
the real API server accepts (server dry run); every value it rejects fails at render time, before
anything reaches a cluster, with a message naming the offending field.

The generator builds a valid list and then applies at most one known fault, so each example carries
the field its error must name. That is the spec written independently of values.schema.json and
_helpers.tpl, which are what is under test."""

from __future__ import annotations

import json
import string
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import CHART, REPORTS, Sandbox, dry_run_apply, unique

pytestmark = pytest.mark.reliability

NAME_LIMIT = 56
LABEL_CHARS = string.ascii_lowercase + string.digits


@dataclass
class Case:
    itses: Any
    # Substrings the error must contain, all of them (None: the value is valid).
    names: list[str] | None = None
    fault: str = "none"


def dns_label(max_size: int) -> st.SearchStrategy[str]:
    """A DNS-1123 label of 1..max_size characters."""
    inner = st.text(LABEL_CHARS + "-", max_size=max(max_size - 2, 0))
    end = st.sampled_from(LABEL_CHARS)
    return st.one_of(end, st.builds(lambda a, b, c: a + b + c, end, inner, end)).filter(lambda s: len(s) <= max_size)


# Valid DNS labels that YAML reads as booleans or numbers unless the chart quotes them.
YAML_AMBIGUOUS = ["n", "y", "no", "yes", "on", "off", "true", "null", "123", "1e3", "0x1f", "0o17", "12e3"]


@st.composite
def valid_its(draw: st.DrawFn, index: int) -> dict[str, Any]:
    # "hp<index>" keeps names unique in the list and clear of ControlPlanes other tests left behind;
    # only the first ITS may take a YAML-ambiguous name, for the same reasons.
    prefix = f"hp{index}-"
    names = st.builds(lambda label: prefix + label, dns_label(NAME_LIMIT - len(prefix)))
    its: dict[str, Any] = {"name": draw(st.one_of(names, st.sampled_from(YAML_AMBIGUOUS)) if index == 0 else names)}
    kind = draw(st.sampled_from([None, "vcluster", "external"]))
    if kind:
        its["type"] = kind
    if draw(st.booleans()):
        its["install_clusteradm"] = draw(st.booleans())
    if kind == "external" and draw(st.booleans()):
        secret: dict[str, str] = {}
        if draw(st.booleans()):
            secret["name"] = draw(st.one_of(dns_label(63), st.sampled_from(YAML_AMBIGUOUS)))
        if draw(st.booleans()):
            secret["namespace"] = draw(st.one_of(dns_label(63), st.sampled_from(YAML_AMBIGUOUS)))
        if draw(st.booleans()):
            secret["key"] = draw(st.text(string.ascii_letters + string.digits + "-._", min_size=1, max_size=40))
        its["bootstrapSecret"] = secret
    return its


@st.composite
def valid_itses(draw: st.DrawFn, min_items: int = 0) -> list[dict[str, Any]]:
    itses = [draw(valid_its(i)) for i in range(draw(st.integers(min_items, 5)))]
    with_host: bool = draw(st.booleans())
    if itses and with_host:  # at most one host
        host = itses[draw(st.integers(0, len(itses) - 1))]
        host["type"] = "host"
        host.pop("bootstrapSecret", None)
    return itses


# Each fault mutates a valid list at item i and returns what the error must name. Each applies to
# lists of at least `min_items` items; schema errors name a JSON pointer, template errors ITSes[i].field.
Fault = Callable[[st.DrawFn, list[Any], int], tuple[Any, list[str]]]
FAULTS: dict[str, tuple[int, Fault]] = {}


def fault(name: str, min_items: int) -> Callable[[Fault], Fault]:
    def register(function: Fault) -> Fault:
        FAULTS[name] = (min_items, function)
        return function

    return register


@fault("itses-not-a-list", 0)
def not_a_list(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    return draw(
        st.one_of(
            st.text(max_size=5),
            st.integers(),
            st.booleans(),
            st.dictionaries(st.sampled_from(["name", "type"]), st.text(max_size=5), max_size=2),
        )
    ), ["'/ITSes'"]


@fault("item-not-an-object", 0)
def item_not_an_object(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    at = draw(st.integers(0, len(itses)))
    itses.insert(
        at, draw(st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none(), st.lists(st.none(), max_size=1)))
    )
    return itses, [f"'/ITSes/{at}'"]


@fault("bad-name", 1)
def bad_name(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    itses[i]["name"] = draw(
        st.one_of(
            st.just(""),
            st.builds(lambda s: s + "x" * (NAME_LIMIT + 1 - len(s)), dns_label(20)),  # exactly one over the limit
            st.builds(lambda s, n: s + "y" * n, dns_label(NAME_LIMIT), st.integers(NAME_LIMIT + 1, 80)),
            st.builds(lambda a, b: a + b, dns_label(10), st.text(string.ascii_uppercase, min_size=1, max_size=3)),
            st.builds(lambda s: "-" + s, dns_label(10)),
            st.builds(lambda s: s + "-", dns_label(10)),
            st.builds(lambda a, c, b: a + c + b, dns_label(10), st.sampled_from(list("_.:/ @")), dns_label(10)),
            st.integers(),
            st.booleans(),
            st.none(),
            st.lists(st.integers(), max_size=2),
        )
    )
    return itses, [f"'/ITSes/{i}/name'"]


@fault("missing-name", 1)
def missing_name(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    del itses[i]["name"]
    return itses, [f"'/ITSes/{i}'", "'name'"]


@fault("bad-type", 1)
def bad_type(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    itses[i]["type"] = draw(
        st.one_of(
            st.text(max_size=10).filter(lambda s: s not in {"vcluster", "host", "external"}),
            st.sampled_from(["VCluster", "Host", "kind"]),
            st.integers(),
            st.booleans(),
            st.none(),
        )
    )
    itses[i].pop("bootstrapSecret", None)
    return itses, [f"'/ITSes/{i}/type'"]


@fault("clusteradm-not-boolean", 1)
def clusteradm_not_boolean(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    itses[i]["install_clusteradm"] = draw(st.one_of(st.sampled_from(["false", "true", "no", ""]), st.integers(), st.none()))
    return itses, [f"'/ITSes/{i}/install_clusteradm'"]


@fault("unknown-key", 1)
def unknown_key(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    key = draw(st.sampled_from(["installClusteradm", "Name", "kind", "bootstrap_secret", "namespace", "labels"]))
    itses[i][key] = draw(st.one_of(st.booleans(), st.text(max_size=5)))
    return itses, [f"'/ITSes/{i}'", f"'{key}'"]


@fault("bad-secret-field", 1)
def bad_secret_field(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    itses[i]["type"] = "external"
    key = draw(st.sampled_from(["name", "namespace", "key", "extra"]))
    # "Bad_Name" is a valid data key, so not offered for `key`.
    bad = ["", "has space", "Bad_Name"] if key != "key" else ["", "has space", "a/b"]
    itses[i]["bootstrapSecret"] = {
        **itses[i].get("bootstrapSecret", {}),
        key: draw(st.one_of(st.sampled_from(bad), st.integers(), st.booleans())),
    }
    if key == "extra":
        return itses, [f"'/ITSes/{i}/bootstrapSecret'", "'extra'"]
    return itses, [f"'/ITSes/{i}/bootstrapSecret/{key}'"]


@fault("secret-on-non-external", 1)
def secret_on_non_external(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    if itses[i].get("type") != "host":
        itses[i].pop("type", None)
        if draw(st.booleans()):
            itses[i]["type"] = "vcluster"
    itses[i]["bootstrapSecret"] = {"name": "anything"}
    return itses, [f"ITSes[{i}].bootstrapSecret"]


@fault("duplicate-name", 2)
def duplicate_name(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    j = draw(st.integers(0, len(itses) - 1).filter(lambda j: j != i))
    first, second = sorted((i, j))
    itses[second]["name"] = itses[first]["name"]
    return itses, [f"ITSes[{second}].name"]


@fault("taken-namespace", 1)
def taken_namespace(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    itses[i]["name"] = draw(st.sampled_from(["kube", "kubeflex", "istio", "calico", "gatekeeper", "cert-manager", "capi"]))
    return itses, [f"ITSes[{i}].name", f"{itses[i]['name']}-system"]


@fault("two-hosts", 2)
def two_hosts(draw: st.DrawFn, itses: list[Any], i: int) -> tuple[Any, list[str]]:
    j = draw(st.integers(0, len(itses) - 1).filter(lambda j: j != i))
    for index in (i, j):
        itses[index]["type"] = "host"
        itses[index].pop("bootstrapSecret", None)
    hosts = [k for k, its in enumerate(itses) if its.get("type") == "host"]
    return itses, [f"ITSes[{hosts[1]}].type"]  # the second host is the one named


@st.composite
def cases(draw: st.DrawFn, fault_name: str) -> Case:
    """A valid list ("none"), or a valid list with the one fault `fault_name`."""
    if fault_name == "none":
        return Case(draw(valid_itses()))
    min_items, mutate = FAULTS[fault_name]
    itses = draw(valid_itses(min_items))
    i = draw(st.integers(0, len(itses) - 1)) if itses else 0
    value, names = mutate(draw, itses, i)
    return Case(value, names, fault_name)


@pytest.fixture(scope="module")
def dry_run_namespace(sandbox: Sandbox) -> str:
    namespace = unique("hypothesis")
    sandbox.kubectl("create", "namespace", namespace)
    # A Pod is admitted only once its ServiceAccount exists, even in a dry run: create those for real.
    rendered = render(sandbox, namespace, [{"name": "hp-accounts"}]).stdout
    accounts = [doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] == "ServiceAccount"]
    sandbox.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": accounts}))
    return namespace


def render(sandbox: Sandbox, namespace: str, itses: Any) -> Any:
    return sandbox.helm(
        "helm3",
        "template",
        "ks-its",
        str(CHART),
        "--namespace",
        namespace,
        "--set-json",
        f"ITSes={json.dumps(itses)}",
        check=False,
    )


# Examples per fault, and of valid lists: every fault is tried, whatever the generator's bias.
EXAMPLES = {"none": 60, **dict.fromkeys(FAULTS, 15)}
TRIED: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_cases_tried() -> Iterator[None]:
    yield
    total, valid = sum(TRIED.values()), TRIED["none"]
    faults = ", ".join(f"{fault} {count}" for fault, count in sorted(TRIED.items()) if fault != "none")
    REPORTS.append(
        f"hypothesis: {total} ITSes values tried: {valid} valid, all accepted by the API server (dry run); "
        f"{total - valid} invalid, all rejected at render naming the field ({faults})"
    )


@pytest.mark.parametrize("fault_name", list(EXAMPLES))
def test_accepted_values_reach_the_server_and_rejected_values_name_the_field(
    sandbox: Sandbox, dry_run_namespace: str, fault_name: str
) -> None:
    # derandomize: the same cases on every CI run, so a red build always reproduces.
    @settings(
        max_examples=EXAMPLES[fault_name],
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(case=cases(fault_name))
    def check(case: Case) -> None:
        TRIED[case.fault] += 1
        result = render(sandbox, dry_run_namespace, case.itses)
        if case.names is None:
            assert result.returncode == 0, result.stderr
            docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
            if docs:
                # The value presumes its bootstrap Secrets exist, so their namespaces do too.
                for its in case.itses:
                    if "namespace" in its.get("bootstrapSecret", {}):
                        sandbox.kubectl("create", "namespace", its["bootstrapSecret"]["namespace"], check=False)
                applied = dry_run_apply(sandbox, docs, dry_run_namespace)
                assert applied.returncode == 0, applied.stderr
                assert applied.stdout.count("(server dry run)") == len(docs)
            return
        assert result.returncode != 0, f"{case.fault}: accepted {json.dumps(case.itses)}"
        assert result.stdout == ""
        missing = [name for name in case.names if name not in result.stderr]
        assert not missing, f"{case.fault}: the error does not name {missing}:\n{result.stderr}"

    check()
    assert TRIED[fault_name] >= EXAMPLES[fault_name] // 2
