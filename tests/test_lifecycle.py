"""What Helm does with the release over its life, as users run it: a first install of the three types,
helm test and uninstall (helm 3 and helm 4), rollback, --atomic, long names, moving a kept ITS to
another release, and the commands NOTES prints."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.harness import CHART, Sandbox, assert_ready_its, install, three_types, unique, wait_until
from tests.sandbox import ports
from tests.sandbox.kube import secret_text

# What the chart creates besides ControlPlanes, by the API that lists it.
NAMESPACED = (
    "serviceaccounts",
    "roles.rbac.authorization.k8s.io",
    "rolebindings.rbac.authorization.k8s.io",
    "configmaps",
    "jobs.batch",
    "pods",
)
CLUSTER_SCOPED = (
    "clusterroles.rbac.authorization.k8s.io",
    "clusterrolebindings.rbac.authorization.k8s.io",
    "validatingadmissionpolicies.admissionregistration.k8s.io",
    "validatingadmissionpolicybindings.admissionregistration.k8s.io",
)


def left_of(sandbox: Sandbox, release: str, namespace: str) -> list[str]:
    """Everything labelled as the release's, ControlPlanes aside."""
    selector = f"app.kubernetes.io/instance={release}"
    found = sandbox.kubectl("get", ",".join(NAMESPACED), "-n", namespace, "-l", selector, "-o", "name").stdout.split()
    names = sandbox.kubectl("get", ",".join(CLUSTER_SCOPED), "-l", selector, "-o", "name").stdout.split()
    # One release name in several namespaces: cluster-scoped names carry the namespace.
    found += [name for name in names if namespace in name]
    # Pods of the hook Job carry the Job's labels, not the release's.
    found += sandbox.kubectl(
        "get", "pods", "-n", namespace, "-l", f"batch.kubernetes.io/job-name={release}-hook", "-o", "name"
    ).stdout.split()
    return found


def test_rollback_brings_a_deleted_its_back_to_ready(sandbox: Sandbox) -> None:
    namespace, release = unique("rollback"), "ks-its"
    kept, dropped = unique("rb-a"), unique("rb-b")
    install(sandbox, "helm3", release, namespace, [{"name": kept}, {"name": dropped}])  # revision 1
    install(sandbox, "helm3", release, namespace, [{"name": kept}])  # revision 2: dropped is kept, not listed
    sandbox.delete_controlplane(dropped)
    wait_until(f"space {dropped} deleted", lambda: sandbox.space_gone(dropped), timeout=300)
    rolled = sandbox.helm(
        "helm3", "rollback", release, "1", "--namespace", namespace, "--wait", "--timeout", "300s", check=False
    )
    assert rolled.returncode == 0, rolled.stderr
    # The post-rollback hook ran: the re-created space is an ITS again, not a bare ControlPlane.
    assert_ready_its(sandbox, dropped)
    assert_ready_its(sandbox, kept)
    tested = sandbox.helm("helm3", "test", release, "--namespace", namespace, "--timeout", "120s", check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")


@pytest.mark.parametrize("helm", ["helm3", "helm4"])
def test_three_types_then_helm_test_then_uninstall_leaves_only_the_kept_spaces(
    sandbox: Sandbox, host_hub: None, helm: str
) -> None:
    namespace, release = unique(f"e2e-{helm}"), "ks-its"
    itses = three_types(sandbox, namespace, helm[-1] + "f")
    result = install(sandbox, helm, release, namespace, itses)
    for its in itses:
        assert_ready_its(sandbox, its["name"])
    assert "manages 3 ITS(es)" in result.stdout  # NOTES
    # --logs as users run it: Helm 3 asks for a pod's logs by the name of every test hook.
    tested = sandbox.helm(helm, "test", release, "--namespace", namespace, "--timeout", "120s", "--logs", check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert f"POD LOGS: {release}-test" in tested.stdout and 'msg="ITS ready"' in tested.stdout
    logs = (sandbox.root / "logs" / "pods" / f"{namespace}_{release}-test.log").read_text()
    assert logs.count('msg="ITS ready"') == 3
    # The test's credentials are gone as soon as the test is over; its pod stays for --logs.
    test_sa = sandbox.kubectl("get", "serviceaccount", f"{release}-test", "-n", namespace, check=False)
    assert test_sa.returncode != 0 and "NotFound" in test_sa.stderr
    assert sandbox.kubectl("get", "pod", f"{release}-test", "-n", namespace, check=False).returncode == 0
    # A last revision with no ITS renders no hook and no test, yet the earlier ones' must go too.
    install(sandbox, helm, release, namespace, [])
    sandbox.helm(helm, "uninstall", release, "--namespace", namespace, "--wait")
    # The pre-delete cleanup hook deleted the hook Job and the test pod; their pods go with the Job.
    assert wait_until(
        "nothing of the release but its spaces",
        lambda: left_of(sandbox, release, namespace) == [],
        shown=lambda: left_of(sandbox, release, namespace),
    )
    for its in itses:  # spaces survive uninstall by default
        assert sandbox.controlplane(its["name"]) is not None
        assert_ready_its(sandbox, its["name"])


def test_a_failed_atomic_install_leaves_no_hook_job_running(sandbox: Sandbox) -> None:
    namespace, release, stuck = unique("atomic"), "ks-its", unique("at")
    sandbox.set_faults(stuck, never_ready=True)
    try:
        result = install(sandbox, "helm3", release, namespace, [{"name": stuck}], "--atomic", "--timeout", "45s", check=False)
        assert result.returncode != 0
        assert wait_until(
            "nothing of the release but its spaces",
            lambda: left_of(sandbox, release, namespace) == [],
            shown=lambda: left_of(sandbox, release, namespace),
        )
        jobs = client.BatchV1Api(sandbox.api).list_namespaced_job(namespace).items
        assert jobs == []
        # (A hook pod deleted while it works ends at once, saying what it left undone:
        # tests/test_reliability.py::test_a_deleted_hook_pod_is_replaced_without_using_up_a_retry.)
    finally:
        sandbox.clear_faults(stuck)
        sandbox.delete_controlplane(stuck)


def test_releases_whose_names_differ_past_the_cut_do_not_collide(sandbox: Sandbox) -> None:
    namespace = unique("longnames")
    base = "platform-team-kubestellar-inventory-spaces"
    for suffix in ("east", "west"):
        # What is under test is the releases' own names: one ITS adopts this worker's external cluster,
        # whose hub exists already; the other (a hub serves one ITS) is a vcluster of its own.
        its = {"name": unique(f"ln-{suffix}"), "type": "external" if suffix == "east" else "vcluster"}
        if its["type"] == "external":
            sandbox.create_bootstrap_secret(f"{its['name']}-bootstrap", namespace)
        result = install(sandbox, "helm3", f"{base}-{suffix}", namespace, [its], check=False)
        assert result.returncode == 0, result.stderr
    jobs = sorted(str(job.metadata.name) for job in client.BatchV1Api(sandbox.api).list_namespaced_job(namespace).items)
    assert len(set(jobs)) == 4, jobs  # each release's namespaces and hook Jobs
    for suffix in ("east", "west"):
        sandbox.helm("helm3", "uninstall", f"{base}-{suffix}", "--namespace", namespace, "--wait")


def test_a_kept_its_moves_to_another_release_as_the_readme_says(sandbox: Sandbox) -> None:
    first_ns, second_ns, name = unique("move-from"), unique("move-to"), unique("mv")
    install(sandbox, "helm3", "ks-its", first_ns, [{"name": name}])
    uid = (sandbox.controlplane(name) or {})["metadata"]["uid"]
    sandbox.helm("helm3", "uninstall", "ks-its", "--namespace", first_ns, "--wait")
    refused = install(sandbox, "helm3", "ks-its", second_ns, [{"name": name}], check=False)
    assert refused.returncode != 0 and "invalid ownership metadata" in refused.stderr
    readme = (CHART.parent / "README.md").read_text()
    block = re.search(r"<!-- move-its:start -->\n```sh\n(.*?)```\n<!-- move-its:end -->", readme, re.DOTALL)
    assert block, "README.md has no move-its block"
    script = block.group(1).replace("its1", name).replace("NEW_RELEASE", "ks-its").replace("NEW_NAMESPACE", second_ns)
    sandbox.run("bash", "-euo", "pipefail", "-c", script)
    install(sandbox, "helm3", "ks-its", second_ns, [{"name": name}])
    assert (sandbox.controlplane(name) or {})["metadata"]["uid"] == uid
    assert_ready_its(sandbox, name)
    sandbox.helm("helm3", "uninstall", "ks-its", "--namespace", second_ns, "--wait")


def notes_commands(notes: str) -> list[str]:
    """Every command line NOTES prints (continuations joined), in order."""
    commands, current = [], ""
    for line in notes.splitlines():
        text = line.strip()
        if current:
            current += " " + text.rstrip("\\").strip()
            if not text.endswith("\\"):
                commands.append(current)
                current = ""
        elif text.startswith(("kubectl ", "helm ")):
            if text.endswith("\\"):
                current = text.rstrip("\\").strip()
            else:
                commands.append(text)
    return commands


@contextlib.contextmanager
def kubestellar_ingress(sandbox: Sandbox, name: str, tmp_path: Path) -> Iterator[str]:
    """What KubeStellar's setup gives the user's machine for the kubeconfig vcluster writes for use
    outside (server https://<cp>.localtest.me:9443, KubeFlex's domain and external port): public DNS
    answers every localtest.me name with 127.0.0.1, and port 9443 reaches an ingress controller that
    passes TLS through to the space (KubeFlex's Ingress <cp>). Here: an /etc/hosts bound in the
    command's own mount namespace, and socat from 127.0.0.1:9443 to the sandbox's relay of the
    space's NodePort (the same pod port). Yields a shell prefix that runs a command there."""
    config = yaml.safe_load(secret_text(sandbox.core.read_namespaced_secret("vc-vcluster", f"{name}-system"), "config"))
    server = urllib.parse.urlsplit(config["clusters"][0]["cluster"]["server"])
    assert (server.hostname, server.port) == (f"{name}.localtest.me", 9443), server
    assert ports.free_on_machine(server.port), f"port {server.port} of the machine is taken"
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {server.hostname}\n")
    ingress = subprocess.Popen(
        [
            "socat",
            f"TCP-LISTEN:{server.port},bind=127.0.0.1,fork,reuseaddr",
            f"TCP:127.0.0.1:{sandbox.vcluster_machine_port(name)}",
        ]
    )
    try:
        wait_until("the ingress stand-in listening", lambda: not ports.free_on_machine(server.port), timeout=10)
        yield f"mount --bind {shlex.quote(str(hosts))} /etc/hosts && "
    finally:
        ingress.terminate()
        ingress.wait(timeout=10)


def test_every_command_notes_prints_runs_as_printed(sandbox: Sandbox, host_hub: None, tmp_path: Path) -> None:
    namespace, release = unique("notes"), "ks-its"
    itses = three_types(sandbox, namespace, "nt")
    result = install(sandbox, "helm3", release, namespace, itses)
    notes = result.stdout.split("NOTES:", 1)[1]
    commands = notes_commands(notes)
    # The state, the logs, the test, and one pair of commands per vcluster space (host: one command).
    assert len(commands) == 3 + 2 + 1, commands
    with kubestellar_ingress(sandbox, itses[0]["name"], tmp_path) as where:
        for command in commands:
            script = f"{where}cd {shlex.quote(str(tmp_path))} && {command}"
            ran = sandbox.run("unshare", "--mount", "bash", "-o", "pipefail", "-c", script, check=False)
            assert ran.returncode == 0, f"{command}\n{ran.stdout}\n{ran.stderr}"
    listed = sandbox.run("bash", "-c", commands[0]).stdout
    assert all(its["name"] in listed for its in itses) and listed.count("Ready") >= 3
    logs = sandbox.run("bash", "-c", commands[1]).stdout
    assert all(f"its={its['name']} step=done" in logs for its in itses), logs  # the hook pods'
    assert "step=namespaces" in logs  # and the run's first Job's
    # An ITS removed from the list is kept, but no longer listed as the release's.
    kept = install(sandbox, "helm3", release, namespace, itses[:2])
    listed = sandbox.run("bash", "-c", notes_commands(kept.stdout.split("NOTES:", 1)[1])[0]).stdout
    assert itses[2]["name"] not in listed and all(its["name"] in listed for its in itses[:2]), listed
    assert sandbox.controlplane(itses[2]["name"]) is not None
    sandbox.helm("helm3", "uninstall", release, "--namespace", namespace, "--wait")


def test_the_packaged_chart_has_its_readme(sandbox: Sandbox, tmp_path: Path) -> None:
    packaged = sandbox.helm("helm3", "package", str(CHART), "--destination", str(tmp_path)).stdout
    archive = re.search(r"saved it to: (\S+)", packaged)
    assert archive, packaged
    readme = sandbox.helm("helm3", "show", "readme", archive.group(1)).stdout
    # The values table helm-tool makes from values.yaml, with the ITSes row and an item's fields.
    table = readme.split("<!-- values-table:start -->", 1)[-1].split("<!-- values-table:end -->", 1)[0]
    assert "## Values" in readme and "<td>ITSes</td>" in table and "<td>ITSes[0].name</td>" in table, readme
    listing = subprocess.run(["tar", "-tzf", archive.group(1)], capture_output=True, text=True, check=True).stdout
    assert "kubestellar-its/tests/" not in listing  # the helm-unittest suites are not shipped
    values = yaml.safe_load(sandbox.helm("helm3", "show", "values", archive.group(1)).stdout)
    assert json.dumps(values["ITSes"]) == "[]"
