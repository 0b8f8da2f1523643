"""Run the benchmarks: ``python -m bench [NAME ...] [--quick] [options of that benchmark]``.

With no name, every benchmark runs. Each writes its own section of ``docs/performance.md``
(between its markers) unless run with ``--quick``.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "fanout": "bench.fanout",  # the sender against boto3 and a raw client (issues 3 and 6)
    "coldstart": "bench.coldstart",  # fresh interpreters per function against import boto3 + 2 clients
    "dynamodb": "bench.dynamodb",  # DynamoDB requests and capacity per operation against the data model's minimum
    "latency": "bench.latency",  # end to end through the local stack: document write -> last permitted client
    "cost": "bench.cost",  # dollars per million notifications and connection-minutes (after dynamodb: reuses its run)
    "scale": "bench.scale",  # the reference workload on the local stack at two sizes, and the model to 1M users
}


def main(argv: list[str]) -> None:
    names = [a for a in argv if a in BENCHMARKS]
    rest = [a for a in argv if a not in BENCHMARKS]
    if any(a in ("-h", "--help") for a in rest) and not names:
        print(__doc__)
        print("benchmarks:", ", ".join(BENCHMARKS))
        return
    unknown = [a for a in rest if not a.startswith("-") and not a.lstrip("-").replace(".", "").isdigit()]
    if unknown and not names:
        sys.exit(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    for name in names or list(BENCHMARKS):
        importlib.import_module(BENCHMARKS[name]).main(rest)


if __name__ == "__main__":
    main(sys.argv[1:])
