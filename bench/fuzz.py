"""The fuzzing targets of tests/test_fuzz.py at length: 10,000 cases per target (issue 13).

    .venv/bin/python bench/fuzz.py [--cases N] [--seed S]

Runs the suite's targets (gate routes, control socket, serial console, MQTT ingest, bundle
manifests) through pytest with FUZZ_CASES=N and prints, per target, the cases run and the time.
A failure prints the seed and case index that reproduce it (FUZZ_SEED, then the same index).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as report:
        env = os.environ | {"FUZZ_CASES": str(args.cases), "FUZZ_SEED": str(args.seed),
                            "FUZZ_REPORT": report.name}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               str(ROOT / "tests" / "test_fuzz.py")], env=env, cwd=ROOT)
        for line in report.read().splitlines():
            row = json.loads(line)
            print(f"{row['target']:<16} {row['cases']:>7} cases  {row['seconds']:>7} s  "
                  f"seed {row['seed']}")
    print("0 tracebacks, 0 answers outside the documented shape" if done.returncode == 0
          else "FAILURES: see the pytest output above")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
