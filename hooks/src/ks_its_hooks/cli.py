"""ks-its-hook: bring the ITSes of this Job index to ready (`install`) or check them (`check`)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client, config

from . import USER_AGENT, pipeline
from .errors import Failure
from .log import EventLog
from .spec import ConfigError, ItsSpec, parse_config, shard

# Exit codes. The hook Job's podFailurePolicy ends the Job at once on the permanent ones, instead
# of retrying the pod for nothing.
EXIT_OK = 0
EXIT_RETRY = 1  # at least one ITS failed in a way another run may get past (deadline, transient)
EXIT_USAGE = 2  # the configuration or the hosting cluster's credentials are unusable
EXIT_PERMANENT = 3  # every failed ITS failed permanently: another run would fail the same way


def hosting_client(connections: int) -> client.ApiClient:
    """In a pod, the pod's ServiceAccount; elsewhere, the usual kubeconfig. One client serves every
    ITS of this pod, with a pooled connection for each: their watches run at the same time."""
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
    parser.add_argument("command", choices=("install", "check"))
    parser.add_argument("--config", default="/etc/ks-its/its.json", help="its.json rendered by the chart")
    parser.add_argument("--index", type=int, default=int(os.environ.get("JOB_COMPLETION_INDEX", "0")),
                        help="this pod's index (default: $JOB_COMPLETION_INDEX)")
    parser.add_argument("--shards", type=int, default=int(os.environ.get("ITS_SHARDS", "1")),
                        help="number of Job indexes sharing the ITS list (default: $ITS_SHARDS)")
    parser.add_argument("--deadline", type=int, help="seconds; overrides deadlineSeconds from the config")
    return parser.parse_args(argv)


def exit_code(failures: list[Failure]) -> int:
    if not failures:
        return EXIT_OK
    return EXIT_PERMANENT if all(f.permanent for f in failures) else EXIT_RETRY


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as handle:
            settings = parse_config(handle.read())
        mine = shard(settings.itses, args.index, args.shards)
    except (OSError, ConfigError) as err:
        print(f"ks-its-hook: invalid configuration {args.config}: {err}", file=sys.stderr)
        return EXIT_USAGE
    if args.deadline:
        settings = dataclasses.replace(settings, deadline_seconds=float(args.deadline))

    try:
        hosting = hosting_client(connections=len(mine))
    except config.ConfigException as err:
        print(f"ks-its-hook: no credentials for the hosting cluster: {err}", file=sys.stderr)
        return EXIT_USAGE

    def one(its: ItsSpec) -> Failure | None:
        return pipeline.run(args.command, hosting, its, settings, EventLog(its.name))

    # Every ITS of this shard at once: their waits overlap instead of adding up.
    with ThreadPoolExecutor(max_workers=max(1, len(mine))) as pool:
        failures = [failed for failed in pool.map(one, mine) if failed is not None]
    for failed in failures:
        print(failed.line, file=sys.stderr)
    return exit_code(failures)


if __name__ == "__main__":
    sys.exit(main())
