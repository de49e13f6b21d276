"""The operations figures of docs/operations.md, measured on one worker of the code at hand:
how long SIGTERM takes with the broker up and with the broker unreachable (and the exit
code), how many log lines the first 24 s of a broker outage write, and what /health and
/ready answer 35 s into it.

    python -m tests.bench.ops --bootstrap 127.0.0.1:19192 [--write]

The outage is one worker's network cut from the broker (tests/support/cut_worker.py), not
a stopped broker: the same for the worker, and the broker stays up for others. `--write`
rewrites the Figures section between the markers of docs/operations.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.bench.compare import short_commit
from tests.support.kafka import REPO, WorkerProcess, cuttable_worker, unique_prefix

DOC = REPO / "docs" / "operations.md"
BEGIN, END = "<!-- ops.py figures: begin -->", "<!-- ops.py figures: end -->"
#: How long the outage whose log lines are counted lasts.
OUTAGE_S = 24.0
#: When in the outage the probes are asked: past JOURNEY_HEALTH_BROKER_S (30 s by default),
#: after which /ready fails.
PROBED_AT_S = 35.0


def status(worker: WorkerProcess, path: str) -> int:
    try:
        with urllib.request.urlopen(worker.url(path), timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code)


def wait_ready(worker: WorkerProcess, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while status(worker, "/ready") != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready within {timeout_s:.0f}s:\n{worker.log_tail()}")
        time.sleep(0.2)


def sigterm(worker: WorkerProcess) -> tuple[float, int]:
    """Seconds from SIGTERM until the process is gone, and its exit code."""
    assert worker.proc is not None
    started = time.monotonic()
    worker.proc.terminate()
    code = worker.proc.wait(120)
    return time.monotonic() - started, code


def lines(worker: WorkerProcess) -> tuple[int, int]:
    assert worker.log_path is not None
    data = worker.log_path.read_bytes()
    return data.count(b"\n"), len(data)


def run(bootstrap: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="journey-ops-") as tmp:
        worker, cut = cuttable_worker(bootstrap, unique_prefix(), Path(tmp))
        worker.start()
        wait_ready(worker)
        up_s, up_code = sigterm(worker)
        worker.start()
        wait_ready(worker)
        before = lines(worker)
        cut.touch()
        time.sleep(OUTAGE_S)
        after = lines(worker)
        time.sleep(PROBED_AT_S - OUTAGE_S)
        health, ready = status(worker, "/health"), status(worker, "/ready")
        down_s, down_code = sigterm(worker)
        cut.unlink()
    return {"sigterm_up_s": up_s, "sigterm_up_code": up_code,
            "sigterm_down_s": down_s, "sigterm_down_code": down_code,
            "outage_lines": after[0] - before[0], "outage_bytes": after[1] - before[1],
            "outage_health": health, "outage_ready": ready}


def report(f: dict[str, float], command: str, commit: str) -> str:
    return "\n".join([
        "## Figures", "",
        f"Written by `tests/bench/ops.py` from one run, on commit `{commit}`, of:", "",
        f"    {command}", "",
        "One worker (defaults, `JOURNEY_STORE=memory://`) on the project's shared 2-core test "
        "machine; the broker outage is the worker's network cut from the broker "
        "(`tests/support/cut_worker.py`).", "",
        "| figure | value |", "|---|---|",
        f"| SIGTERM with the broker up: until the process is gone (exit code) | "
        f"{f['sigterm_up_s']:.1f} s ({f['sigterm_up_code']:.0f}) |",
        f"| SIGTERM with the broker unreachable (`JOURNEY_SHUTDOWN_TIMEOUT_S` 15 s) | "
        f"{f['sigterm_down_s']:.1f} s ({f['sigterm_down_code']:.0f}) |",
        f"| log lines written in the first {OUTAGE_S:.0f} s of a broker outage | "
        f"{f['outage_lines']:,.0f} ({f['outage_bytes'] / 1000:,.1f} kB) |",
        f"| `/health` and `/ready` after {PROBED_AT_S:.0f} s of outage "
        f"(`JOURNEY_HEALTH_BROKER_S` 30 s) | "
        f"{f['outage_health']:.0f} and {f['outage_ready']:.0f} |",
        "",
    ])


def write(figures: dict[str, float], command: str, commit: str) -> None:
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{report(figures, command, commit)}{END}{tail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="a running broker")
    parser.add_argument("--write", action="store_true", help=f"write {DOC.name}")
    args = parser.parse_args(argv)
    figures = run(args.bootstrap)
    for name, value in figures.items():
        print(f"{name:20} {value:,.1f}")
    if args.write:
        write(figures, f"python -m tests.bench.ops --bootstrap {args.bootstrap} --write",
              short_commit())
        print(f"written to {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
