"""ks-its-hook: bring the ITSes of this Job index to ready (`install`) or check them (`check`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client, config

from . import USER_AGENT, pipeline
from .errors import StepFailed
from .log import EventLog
from .spec import ConfigError, HookConfig, ItsSpec, parse_config, shard

Step = Callable[[client.ApiClient, ItsSpec, HookConfig, EventLog], StepFailed | None]


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as handle:
            settings = parse_config(handle.read())
        mine = shard(settings.itses, args.index, args.shards)
    except (OSError, ConfigError) as err:
        print(f"ks-its-hook: invalid configuration {args.config}: {err}", file=sys.stderr)
        return 2
    if args.deadline:
        settings = HookConfig(settings.itses, float(args.deadline), settings.image_registry, settings.bundle_version)
    step: Step = pipeline.install if args.command == "install" else pipeline.check

    try:
        hosting = hosting_client(connections=len(mine))
    except config.ConfigException as err:
        print(f"ks-its-hook: no credentials for the hosting cluster: {err}", file=sys.stderr)
        return 2

    def one(its: ItsSpec) -> StepFailed | None:
        return step(hosting, its, settings, EventLog(its.name))

    # Every ITS of this shard at once: their waits overlap instead of adding up.
    with ThreadPoolExecutor(max_workers=max(1, len(mine))) as pool:
        failures = [failure for failure in pool.map(one, mine) if failure is not None]
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
