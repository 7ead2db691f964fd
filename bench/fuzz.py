"""A long fuzzing run of the ingress: hostile requests (``tests/fuzzing.py``) against the real app in
process, every property checked on every case.

    python bench/fuzz.py [--cases 100000] [--seed 1]

Prints a progress line every 5,000 cases, then the cases run, the answers by status, cases/s, and
the first failure with its request (exit 1) if any property broke. CI runs the same properties
bounded (tests/unit/test_fuzz_ingress.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

from tests.fuzzing import FuzzRequest, Ingress, requests  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ingress = Ingress.build(Path(folder))
        done = 0
        started = time.monotonic()

        @seed(args.seed)
        @settings(
            max_examples=args.cases,
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(request=requests())
        def run(request: FuzzRequest) -> None:
            nonlocal done
            ingress.check(request)
            done += 1
            if done % 5_000 == 0:
                rate = done / (time.monotonic() - started)
                print(f"  {done:,} cases, {rate:,.0f}/s, answers {dict(sorted(ingress.answers.items()))}", flush=True)

        failure: BaseException | None = None
        try:
            run()
        except Exception as exc:  # a property broke: hypothesis has shrunk it to the smallest request
            failure = exc
        elapsed = time.monotonic() - started
    answers = Counter(ingress.answers)
    print(f"cases: {done:,} in {elapsed:.0f} s ({done / elapsed:,.0f}/s)")
    print(f"answers: {', '.join(f'{status}: {n:,}' for status, n in sorted(answers.items()))}")
    print(f"published (accepted): {len(ingress.publisher.published):,}")
    if failure is not None:
        print(f"PROPERTY BROKEN: {failure}")
        return 1
    print("no 5xx, nothing unsigned published, every 200 published exactly its record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
