"""The README's run command: a worker, the sample touchpoints, and what came out of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import suppress
from importlib import resources
from pathlib import Path
from typing import Any

from journey.contract.topics import Topics
from journey.pipeline.settings import Settings
from journey.stream.kafka_client import consumer, ensure_topics, producer


def run_demo(settings: Settings, *, timeout_s: float) -> int:
    prefix = settings.topic_prefix or f"demo{int(time.time())}-"
    settings = settings.model_copy(update={"topic_prefix": prefix, "app_id": f"{prefix}journey"})
    topics = settings.topics()
    ensure_topics(settings, topics)
    lines = resources.files("journey.sample").joinpath("touchpoints.jsonl").read_bytes()
    records = [line for line in lines.splitlines() if line.strip()]

    print(f"== starting a journey worker (topics prefixed {prefix!r}) ==")
    worker = _start_worker(settings)
    try:
        _wait_healthy(settings, worker, timeout_s)
        print(f"== sending {len(records)} sample touchpoints to {topics.touchpoints.name} ==")
        _send(settings, topics.touchpoints.name, records)
        expected_dead = sum(1 for r in records if not r.startswith(b"{"))
        seen = _collect(settings, topics, timeout_s, expected_dead)
        _show(seen)
        print("\n== metrics (from /metrics on the worker's web port) ==")
        for line in _metrics(settings).splitlines():
            # Counters that start at zero (every dead-letter reason) would bury the rest.
            if (line.startswith("journey_") and "_created" not in line and "_batch" not in line
                    and not line.endswith(" 0.0")):
                print("  " + line)
        return 0
    finally:
        worker.terminate()
        with suppress(subprocess.TimeoutExpired):
            worker.wait(30)
        if worker.poll() is None:
            worker.kill()


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, "JOURNEY_TOPIC_PREFIX": settings.topic_prefix,
           "JOURNEY_APP_ID": settings.app_id, "JOURNEY_LOG_LEVEL": "WARNING",
           # Frequent ticks so held triggers and due detections show up within seconds.
           "JOURNEY_TICK_INTERVAL_MS": os.environ.get("JOURNEY_TICK_INTERVAL_MS", "1000")}
    log = Path(settings.data_dir) / "demo-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "journey.cli", "worker"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _wait_healthy(settings: Settings, worker: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with code {worker.returncode}; "
                             f"see {settings.data_dir}/demo-worker.log")
        with suppress(OSError):
            _metrics(settings)
            return
        time.sleep(0.3)
    raise SystemExit("the worker did not come up in time")


def _send(settings: Settings, topic: str, records: list[bytes]) -> None:
    p = producer(settings)
    for raw in records:
        key = None
        with suppress(ValueError):
            key = str(json.loads(raw)["customer_id"]).encode()
        p.send(topic, value=raw, key=key)
    p.flush()
    p.close()


def _collect(
    settings: Settings, topics: Topics, timeout_s: float, expected_dead: int
) -> dict[str, list[tuple[bytes | None, dict[str, Any]]]]:
    names = [topics.stage_changes.name, topics.triggers.name, topics.dead_letters.name,
             topics.trigger_audit.name]
    c = consumer(settings, *names)
    seen: dict[str, list[tuple[bytes | None, dict[str, Any]]]] = {n: [] for n in names}
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            got = c.poll(timeout_ms=500)
            for batch in got.values():
                for r in batch:
                    seen[r.topic].append((r.key, json.loads(r.value)))
                quiet_since = time.monotonic()
            done = len(seen[topics.dead_letters.name]) >= expected_dead and seen[names[1]]
            if done and time.monotonic() - quiet_since > 5:
                break
    finally:
        c.close()
    return {"stage changes": seen[names[0]], "triggers": seen[names[1]],
            "dead letters": seen[names[2]], "trigger audit": seen[names[3]]}


def _show(seen: dict[str, list[tuple[bytes | None, dict[str, Any]]]]) -> None:
    print("\n== stage changes ==")
    for _, r in sorted(seen["stage changes"], key=lambda kv: kv[1]["occurred_at"]):
        print(f"  {r['occurred_at']}  {r['customer_id']:<8} {r['journey']:<10} "
              f"{r['from_stage'] or '(new)'} -> {r['to_stage']}")
    print("\n== triggers (what downstream senders receive) ==")
    for _, r in sorted(seen["triggers"], key=lambda kv: kv[1]["send_at"]):
        print(f"  send {r['send_at']}  {r['customer_id']:<8} {r['rule']:<28} "
              f"{r['kind']:<9} code={r['offer_code']}  id={r['trigger_id'][:12]}…")
    print("\n== trigger audit (held back by the policy) ==")
    for _, r in seen["trigger audit"]:
        print(f"  {r['occurred_at']}  {r['customer_id']:<8} {r['rule']:<28} "
              f"{r['decision']}: {r['reason']}")
    print("\n== dead letters ==")
    for _, r in seen["dead letters"]:
        print(f"  {r['reason']:<18} {r['message'][:70]}")


def _metrics(settings: Settings) -> str:
    url = f"http://{settings.web_host}:{settings.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as resp:
        return str(resp.read().decode())
