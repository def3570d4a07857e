"""`make integration`: one sandbox for the whole suite, then the suite in two phases on it.

1. every test but the secret scan, on WORKERS pytest-xdist workers at once, the longest test first to
   whichever worker is free (tests/scheduling.py; the tests often wait on the sandbox: since every
   space is a pod of the real KubeFlex's vcluster chart, three at once keep the two cores busy, and
   four made installs and hook pods miss their timeouts);
2. the secret scan alone, once every hook of the run has logged what it will log.

The sandbox lives as long as this process (its lifeline), however it ends. pytest arguments
(`make integration PYTEST_ARGS=...`) go to both phases; test paths among them narrow the run.

python -m tests.run [pytest arguments]
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.harness import SANDBOX_ENV
from tests.sandbox.servers import REPO
from tests.sandbox.supervisor import down, up

WORKERS = 3
LAST_MODULE = "tests/test_secret_scan.py"  # the secret scan
NO_TESTS_COLLECTED = 5  # pytest's exit code when a selection (-k, -m) leaves a phase empty


def phases(args: list[str]) -> list[list[str]]:
    """The pytest command of each phase. Test paths among args (`tests/test_x.py::test_y`) narrow
    the run; without any, it is the whole suite."""
    paths = [arg for arg in args if arg.startswith("tests") and (REPO / arg.split("::")[0]).exists()]
    options = [arg for arg in args if arg not in paths]
    first = [path for path in paths if not path.startswith(LAST_MODULE)] if paths else ["tests"]
    last = [path for path in paths if path.startswith(LAST_MODULE)] if paths else [LAST_MODULE]
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *options]
    return ([[*pytest, *first, "--ignore", LAST_MODULE, "-p", "tests.scheduling", "-n", str(WORKERS)]] if first else []) + (
        [[*pytest, *last]] if last else []
    )


def main(args: list[str]) -> int:
    root = REPO / ".cache" / f"sandbox-test-{os.getpid()}"
    lifeline, keep = os.pipe()
    try:
        up(root, lifeline=lifeline)
        os.close(lifeline)
        env = {**os.environ, SANDBOX_ENV: str(root)}
        codes = [subprocess.run(argv, cwd=REPO, env=env, check=False).returncode for argv in phases(args)]
    finally:
        down(root)
        os.close(keep)
    failed = [code for code in codes if code not in (0, NO_TESTS_COLLECTED)]
    return failed[0] if failed else (0 if 0 in codes else NO_TESTS_COLLECTED)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
