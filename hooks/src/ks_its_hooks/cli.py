"""ks-its-hook: the hook run of the chart. `preflight` (before the release is applied) refuses ITSes whose
namespace is taken; `namespaces` (the run's first Job) waits until KubeFlex made each ITS's namespace;
`install` brings the ITSes of this Job index to ready; `check` (helm test) checks them; `cleanup`
(pre-delete) deletes the release's Jobs and test pod."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from . import termination
from .spec import ConfigError, parse_config, shard

# The kubernetes client and the steps are imported only once the termination message says which
# ITSes this pod has: importing them takes most of the pod's first megabytes.
if TYPE_CHECKING:
    from kubernetes import client

    from .errors import Failure

# Exit codes. The hook Job's podFailurePolicy ends the Job at once on the permanent ones, instead
# of retrying the pod for nothing.
# Every one is the hook's verdict, which the Jobs do not retry: the hook retries within the run's deadline.
EXIT_OK = 0
EXIT_RETRY = 1  # at least one ITS failed in a way a later run may get past (its deadline, a transient cause)
EXIT_USAGE = 2  # the configuration or the hosting cluster's credentials are unusable
EXIT_PERMANENT = 3  # every failed ITS failed permanently: another run would fail the same way


def hosting_client(connections: int) -> client.ApiClient:
    """In a pod, the pod's ServiceAccount; elsewhere, the usual kubeconfig. One client serves every
    ITS of this pod, with a pooled connection for each: their watches run at the same time.
    Raises kubernetes' ConfigException when there are no credentials."""
    from kubernetes import client, config  # noqa: PLC0415 - see the imports above

    from . import USER_AGENT  # noqa: PLC0415

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = max(connections, configuration.connection_pool_maxsize)
    api = client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    return api


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ks-its-hook", description=__doc__)
    parser.add_argument("command", choices=("preflight", "namespaces", "install", "check", "cleanup"))
    parser.add_argument(
        "--config", default="/etc/ks-its/its.json", help="its.json rendered by the chart (the preflight's comes in $ITS_JSON)"
    )
    parser.add_argument(
        "--index",
        type=int,
        default=int(os.environ.get("JOB_COMPLETION_INDEX", "0")),
        help="this pod's index (default: $JOB_COMPLETION_INDEX)",
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=int(os.environ.get("ITS_SHARDS", "1")),
        help="number of Job indexes sharing the ITS list (default: $ITS_SHARDS)",
    )
    parser.add_argument("--deadline", type=int, help="seconds; overrides deadlineSeconds from the config")
    parser.add_argument("--job", action="append", default=[], help="cleanup: a Job to delete (repeatable)")
    parser.add_argument("--test-pod", help="cleanup: the helm test pod to delete")
    return parser.parse_args(argv)


def exit_code(failures: Sequence[Failure]) -> int:
    if not failures:
        return EXIT_OK
    return EXIT_PERMANENT if all(f.permanent for f in failures) else EXIT_RETRY


def run_cleanup(args: argparse.Namespace) -> int:
    """The pre-delete hook: Helm deletes no hook resources with the release, so this does."""
    from kubernetes.config import ConfigException  # noqa: PLC0415 - see the imports above

    from . import pod  # noqa: PLC0415

    namespace = os.environ.get("POD_NAMESPACE", "")
    if not (namespace and args.job and args.test_pod):
        print("ks-its-hook: cleanup needs --job, --test-pod and $POD_NAMESPACE", file=sys.stderr)
        return EXIT_USAGE
    try:
        deleted = pod.cleanup(hosting_client(connections=1), namespace, args.job, args.test_pod)
    except ConfigException as err:
        print(f"ks-its-hook: no credentials for the hosting cluster: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(f"ks-its-hook: cleanup: deleted {', '.join(deleted) or 'nothing (already gone)'}", file=sys.stderr)
    return EXIT_OK


def run_started(hosting: client.ApiClient, namespace: str, job: str) -> float | None:
    """When the run began, as a time.monotonic() reading: the start of its first Job, so that the
    deadline is the whole run's (a replaced pod, and the Jobs after the first, get what is left)."""
    from . import pod  # noqa: PLC0415 - see the imports above

    started = pod.best_effort(f"read when Job {job} started", pod.job_start, hosting, namespace, job)
    if not started:
        return None
    ago = time.time() - datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    return time.monotonic() - max(0.0, ago)


def finish(me: termination.PodIdentity | None, hosting: client.ApiClient, failures: Sequence[Failure], done: str) -> int:
    """Each failure's line on stderr, as the termination message and as an Event on the pod's Job."""
    from . import pod  # noqa: PLC0415 - see the imports above

    for failed in failures:
        print(failed.line, file=sys.stderr)
    if me:
        termination.write(me, [failed.line for failed in failures] or [done])
        if failures and me.job:
            pod.best_effort(
                f"report the failures on Job {me.job}", pod.report_failures, hosting, me.namespace, me.job, failures
            )
    return exit_code(failures)


def main(argv: list[str] | None = None) -> int:
    termination.hold_sigterm()
    args = parse_args(argv)
    if args.command == "cleanup":
        return run_cleanup(args)
    me = termination.identity(args.command)

    def usage_error(line: str) -> int:
        print(line, file=sys.stderr)
        if me:
            termination.write(me, [line])
        return EXIT_USAGE

    # The preflight runs before the release's ConfigMap exists: its.json comes in its environment.
    source = "$ITS_JSON" if "ITS_JSON" in os.environ else args.config
    try:
        if "ITS_JSON" in os.environ:
            settings = parse_config(os.environ["ITS_JSON"])
        else:
            with open(args.config, encoding="utf-8") as handle:
                settings = parse_config(handle.read())
        mine = shard(settings.itses, args.index, args.shards)
    except (OSError, ConfigError) as err:
        return usage_error(f"ks-its-hook: invalid configuration {source}: {err}")
    if args.deadline:
        settings = dataclasses.replace(settings, deadline_seconds=float(args.deadline))
    names = tuple(its.name for its in mine)
    if me:
        termination.write(me, termination.unfinished(names))
    termination.end_on_sigterm(args.command, names, me)

    from kubernetes.config import ConfigException  # noqa: PLC0415 - see the imports above

    from . import pipeline  # noqa: PLC0415
    from .log import EventLog  # noqa: PLC0415

    try:
        hosting = hosting_client(connections=len(names))
    except ConfigException as err:
        return usage_error(f"ks-its-hook: no credentials for the hosting cluster: {err}")
    run_job = os.environ.get("ITS_RUN_JOB")
    started = run_started(hosting, me.namespace, run_job) if me and run_job else None
    mode: pipeline.Mode = args.command
    # Every ITS of this shard at once: their waits overlap instead of adding up.
    with ThreadPoolExecutor(max_workers=max(1, len(mine))) as pool:
        outcomes = pool.map(lambda its: pipeline.run(mode, hosting, its, settings, EventLog(its.name), started), mine)
        failures = [failed for failed in outcomes if failed is not None]
    return finish(me, hosting, failures, f"{pipeline.FINISHED[mode]}: {', '.join(names)}")


if __name__ == "__main__":
    sys.exit(main())
