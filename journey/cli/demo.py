"""`journey demo`, the short tour: a worker, the sample touchpoints, and what came of them."""

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

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from journey.cli.topics import broker_topics, unreachable
from journey.contract.decode import Rejection, decode
from journey.contract.topics import Topics
from journey.engine.definitions import DefinitionError, load_definitions
from journey.pipeline.settings import Settings
from journey.stream.kafka_client import client_config, consumer, ensure_topics, producer

Seen = dict[str, list[tuple[bytes | None, dict[str, Any]]]]


def run_demo(settings: Settings, *, timeout_s: float, keep_topics: bool = False) -> int:
    own_prefix = not settings.topic_prefix
    prefix = settings.topic_prefix or f"demo{int(time.time())}-"
    settings = settings.model_copy(update={"topic_prefix": prefix, "app_id": f"{prefix}journey"})
    topics = settings.topics()
    try:
        notes = rule_notes(settings)
    except DefinitionError as exc:
        print(f"journey demo: {exc}", file=sys.stderr)
        return 2
    try:
        broker_topics(settings, [])  # fails fast, in one line, when the broker is unreachable
        created = ensure_topics(settings, topics)
    except KafkaError as exc:
        print(f"journey demo: {unreachable(settings, exc)}", file=sys.stderr)
        return 1
    lines = resources.files("journey.sample").joinpath("touchpoints.jsonl").read_bytes()
    records = [line for line in lines.splitlines() if line.strip()]

    print("\n".join(describe_sample(records, settings)))
    print(f"\n== starting a journey worker (topics prefixed {prefix!r}) ==")
    worker = _start_worker(settings)
    try:
        _wait_healthy(settings, worker, timeout_s)
        print(f"== sending {len(records)} sample touchpoints to {topics.touchpoints.name} ==")
        _send(settings, topics.touchpoints.name, records)
        expected_dead = sum(1 for r in records if isinstance(_decode(r, settings), Rejection))
        seen = _collect(settings, topics, timeout_s, expected_dead)
        print("\n".join(explain(seen, records, notes)))
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
        if not keep_topics:
            _remove_topics(settings, prefix if own_prefix else None, created)


# --- what the sample holds, and why each output happened ----------------------------------

#: Why each lifecycle detection fires (journey "lifecycle": they belong to the customer).
LIFECYCLE_NOTES = {
    "complaint_escalation": "a complaint had no complaint_response within 48 h (seed 004: a "
    "customer turns toxic when the response is missing); a service trigger",
    "inactive_lead_reactivation": "a lead bought nothing within 30 days of capture (seed 004)",
    "churn_risk_reactivation": "the churn model's P(alive) fell below the threshold",
    "dormant_wake_up": "quiet for twice their own gap between purchases (90 days with fewer "
    "than 3 purchases)",
    "win_back": "no reaction within 60 days of a reactivation attempt",
    "low_season_invitation": "a regular customer, at the start of the low season (seed 003)",
}
#: Why the policy or a journey's exit held a trigger back, by reason code.
AUDIT_NOTES = {
    "opted_out": "the customer opted out; no marketing after an opt-out (seed 003)",
    "expired": "its offer expired before it could be sent",
    "holdout_group": "the customer is in the holdout (control) group",
    "already_sent": "the rule sends once per customer and it did",
    "cooldown": "the rule sent to this customer too recently",
    "quiet_hours": "inside the customer's local quiet hours (JOURNEY_QUIET_HOURS)",
    "contact_budget": "the customer had the most marketing contacts the window allows "
    "(JOURNEY_CONTACT_BUDGET)",
}


def rule_notes(settings: Settings) -> dict[tuple[str, str], str]:
    """(journey, rule) -> what the rule is for, from the definitions' own descriptions."""
    notes = {("lifecycle", rule): text for rule, text in LIFECYCLE_NOTES.items()}
    for d in load_definitions(settings.definitions):
        for rule in d.rules:
            notes[(d.name, rule.name)] = " ".join(rule.description.split()) or rule.name
        for name, text in LIFECYCLE_NOTES.items():
            notes[(d.name, name)] = text
    return notes


def _decode(raw: bytes, settings: Settings) -> object:
    return decode(raw, policy=settings.ingest_policy(), now_ms=int(time.time() * 1000))


def describe_sample(records: list[bytes], settings: Settings) -> list[str]:
    """What the sample contains, read from the sample itself."""
    ids: dict[str, int] = {}
    customers: set[str] = set()
    bad: list[tuple[int, Rejection]] = []
    opt_outs: list[str] = []
    for number, raw in enumerate(records, start=1):
        decoded = _decode(raw, settings)
        if isinstance(decoded, Rejection):
            bad.append((number, decoded))
            continue
        tp: Any = decoded
        customers.add(tp.customer_id)
        ids[tp.event_id] = ids.get(tp.event_id, 0) + 1
        if tp.type == "opt_out":
            opt_outs.append(f"{tp.customer_id} on {tp.occurred_at.date()}")
    duplicates = sorted(i for i, n in ids.items() if n > 1)
    hold_s = settings.trigger_hold_s
    hold = f"{settings.allowed_lateness_s} s (the allowed lateness)" if hold_s is None \
        else f"{hold_s} s"
    out = ["== the sample ==",
           f"  {len(records)} lines: {sum(ids.values())} valid touchpoints from "
           f"{len(customers)} customers ({', '.join(sorted(customers))}), in event time",
           f"  a duplicate: event id {', '.join(duplicates) or '(none)'} is sent twice; the "
           "worker counts it once",
           f"  {len(bad)} bad lines, dead-lettered with a reason:"]
    out += [f"    line {n}: {r.reason} - {r.message}" for n, r in bad]
    out += [f"  an opt-out: {'; '.join(opt_outs) or '(none)'} - no marketing trigger after it",
            f"  journeys: {', '.join(settings.definitions)}; lifecycle detections (inactive "
            "lead, sleeping, complaint...) belong to the customer: one trigger per episode",
            f"  marketing triggers wait for the hold (JOURNEY_TRIGGER_HOLD_S, here {hold}) and "
            "the allowed lateness before they are decided, so a late opt-out is honoured; "
            "the sample's events are weeks old, so the worker's ticks release them at once, "
            "while live events' triggers come out that much later"]
    return out


def explain(seen: Seen, records: list[bytes], notes: dict[tuple[str, str], str]) -> list[str]:
    """Every output with the reason it happened."""
    types: dict[str, str] = {}
    for raw in records:
        with suppress(ValueError, TypeError, KeyError):
            doc = json.loads(raw)
            types[str(doc["event_id"])] = str(doc["type"])
    out = ["", "== stage changes (journey: from -> to, and the event that caused it) =="]
    for _, r in sorted(seen["stage changes"], key=lambda kv: kv[1]["occurred_at"]):
        cause = r["cause_event_id"]
        why = f"{cause} ({types[cause]})" if cause in types else cause
        out.append(f"  {r['occurred_at']}  {r['customer_id']:<8} {r['journey']:<18} "
                   f"{r['from_stage'] or '(new)'} -> {r['to_stage']}   because of {why}")
    out += ["", "== triggers (what downstream senders receive) =="]
    for _, r in sorted(seen["triggers"], key=lambda kv: kv[1]["send_at"]):
        note = notes.get((r["journey"], r["rule"]), r["reason"])
        cause = r["details"].get("cause_event_id")
        by = f" (event {cause})" if cause else ""
        out.append(f"  send {r['send_at']}  {r['customer_id']:<8} {r['rule']:<28} "
                   f"{r['kind']:<9} code={r['offer_code']}  id={r['trigger_id'][:12]}…")
        out.append(f"      why: {note}{by}")
    out += ["", "== trigger audit (not sent, and why) =="]
    for _, r in seen["trigger audit"]:
        if r["decision"] == "cancelled":
            why = f"cancelled by the journey's exit {r['reason']!r}"
        else:
            why = AUDIT_NOTES.get(r["reason"], r["reason"])
        out.append(f"  {r['occurred_at']}  {r['customer_id']:<8} {r['rule']:<28} "
                   f"{r['decision']}: {r['reason']} - {why}")
    out += ["", "== dead letters (rejected records, with the original bytes kept) =="]
    for _, r in seen["dead letters"]:
        out.append(f"  {r['reason']:<18} {r['message'][:90]}")
    return out


def _remove_topics(settings: Settings, prefix: str | None, created: list[str]) -> None:
    """Delete what the demo made: every topic with its own prefix (the worker's internal
    ones too), or, under a prefix the user chose, only the topics it created."""
    try:
        admin = KafkaAdminClient(**client_config(settings), client_id=f"{settings.app_id}-demo")
        try:
            names = [n for n in admin.list_topics() if n.startswith(prefix)] if prefix \
                else list(created)
            if names:
                admin.delete_topics(names)
                print(f"\n== removed the demo's {len(names)} topics "
                      "(--keep-topics keeps them) ==")
        finally:
            admin.close()
    except KafkaError as exc:
        print(f"journey demo: could not remove the demo's topics: {exc}", file=sys.stderr)


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


def _metrics(settings: Settings) -> str:
    url = f"http://{settings.web_host}:{settings.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as resp:
        return str(resp.read().decode())
