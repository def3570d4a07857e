"""python -m tests.sandbox up|down|status|serve [--dir DIR]"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .servers import StartError
from .supervisor import DEFAULT_DIR, down, serve, state, up


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox")
    parser.add_argument("command", choices=("up", "down", "status", "serve"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--machine-netns-fd", type=int, help="serve: the machine's network namespace, open")
    parser.add_argument("--lifeline-fd", type=int, help="serve: end the sandbox when this pipe closes")
    args = parser.parse_args()
    root = args.dir.resolve()
    if args.command == "serve":
        return serve(root, args.machine_netns_fd, args.lifeline_fd)
    if args.command == "down":
        down(root)
        print(f"sandbox: down ({root})")
        return 0
    if args.command == "status":
        current = state(root)
        print(json.dumps(current, indent=2) if current else "sandbox: not running")
        return 0 if current else 1
    try:
        current = up(root)
    except StartError as err:
        print(f"sandbox: {err}", file=sys.stderr)
        return 1
    print(f"sandbox: up: hosting {current['hosting']}; admin kubeconfig {root / 'kubeconfig'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
