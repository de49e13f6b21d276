"""The AsyncAPI 3.0 document of every topic: who writes it, who reads it, what it carries."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from journey.contract.records import (
    SCHEMA_VERSION,
    CustomerErased,
    DeadLetter,
    StageChanged,
    Touchpoint,
    TriggerAudited,
    TriggerEmitted,
)
from journey.contract.topics import Topics, TopicSpec

KAFKA_BINDING_VERSION = "0.5.0"

#: journey's own agents; any other writer or reader is outside the application.
AGENTS: dict[str, str] = {
    "ingest": "ingest agent (`ingest`)",
    "advance": "journey agent (`advance`)",
}


@dataclass(frozen=True, slots=True)
class Flow:
    """One topic's traffic: the message it carries and who writes and reads it."""

    model: type[BaseModel]
    message: str
    summary: str
    writers: tuple[str, ...]
    readers: tuple[str, ...]
    key: str


#: Topics that are the worker's private storage, not part of the contract.
PRIVATE = frozenset({"state_changelog", "erasure_changelog"})

# Keyed by the field names of Topics; a topic without a flow stops generation.
FLOWS: dict[str, Flow] = {
    "touchpoints": Flow(
        Touchpoint, "touchpoint",
        "Touchpoints as the platforms report them. The worker validates every record.",
        ("platforms (site, CRM, ad, email and shop systems; `journey send` / `journey replay`)",),
        ("ingest",),
        "customer_id recommended, so one customer's touchpoints stay in order; the worker "
        "does not read it",
    ),
    "events": Flow(
        Touchpoint, "acceptedTouchpoint",
        "Internal: accepted touchpoints in canonical JSON, re-keyed by customer_id.",
        ("ingest",), ("advance",), "customer_id, UTF-8",
    ),
    "stage_changes": Flow(
        StageChanged, "stageChanged",
        "A customer moved from one stage of a journey to another.",
        ("advance",), ("analytics, dashboards and CRM sync",), "customer_id, UTF-8",
    ),
    "triggers": Flow(
        TriggerEmitted, "triggerEmitted",
        "Requests for a downstream sender to act on one customer; journey sends nothing itself.",
        ("advance",), ("downstream senders (email, SMS, ads, sales hand-off)",),
        "customer_id, UTF-8",
    ),
    "trigger_audit": Flow(
        TriggerAudited, "triggerAudited",
        "Triggers the policy did not send now (suppressed, deferred, held out) and why.",
        ("advance",), ("operators and analytics",), "customer_id, UTF-8",
    ),
    "dead_letters": Flow(
        DeadLetter, "deadLetter",
        "Touchpoints that were rejected, with the reason code and the original bytes.",
        ("ingest",), ("operators and the platform teams that sent them",),
        "<source topic>:<partition>:<offset>, UTF-8: each dead letter its own key (the "
        "original key is in original_key_b64). The topic is compacted as well as "
        "time-limited: an erasure writes a tombstone (null value) under the key of each dead "
        "letter naming the customer, and compaction removes its bytes; skip null values",
    ),
    "erasures": Flow(
        CustomerErased, "customerErased",
        "A customer was erased (GDPR article 17) on an erasure_requested touchpoint or "
        "DELETE /customers/{id}: downstream systems erase their copy too.",
        ("advance",), ("every system that keeps customer data from journey's topics",),
        "customer_id, UTF-8",
    ),
}

DELIVERY_CONTRACT = """\
Delivery contract:

- Transactional, at-least-once, never loss. For each partition, a touchpoint's offset is
  committed in one Kafka transaction with every record it caused (stage changes, triggers,
  audit records, dead letters, forwarded events) and the customer's new state. A worker
  that has lost a partition (a crash, a rebalance, a freeze past its session timeout) is
  fenced: its new owner's producer aborts whatever it left open and refuses its later
  writes. Read with isolation.level=read_committed: records of aborted attempts are never
  seen, and a record repeats only when input is replayed after a commit whose confirmation
  was lost. Without read_committed, records of aborted attempts are seen as well. Every
  repeat carries the same id, never a new one. This relies on Kafka keeping what it
  acknowledged (acks=all; replication for durability) and on consumers reading the topics
  in order per partition.
- Every record journey writes is keyed by customer_id (dead letters excepted: each is keyed
  by where it came from), so all records of one customer are in one partition, in the order
  journey produced them. There is no order across customers.
- Consumers deduplicate: triggers on trigger_id, stage changes on change_id. Both ids are
  deterministic, so a redelivered or recomputed record carries the same id.
- Platforms should key touchpoints by customer_id too. event_id is the idempotency key:
  a resent touchpoint must carry the same event_id.
- Every address carries the deployment's JOURNEY_TOPIC_PREFIX (empty by default) and the
  partition count is JOURNEY_PARTITIONS; the names below are the defaults.
"""


def asyncapi_document(
    topics: Topics, *, bootstrap: str, payload_files: Mapping[type[BaseModel], str]
) -> dict[str, Any]:
    """The document for these topics; payload_files maps each record model to its schema file."""
    named = _flows_of(topics)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "journey: customer-journey stream processor",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "Touchpoints in; journey stage changes, lifecycle triggers and dead letters\n"
                "out, on Apache Kafka. Payload schemas are generated from\n"
                "journey.contract.records.\n\n"
                + DELIVERY_CONTRACT
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": bootstrap,
                "protocol": "kafka",
                "description": "The development broker of deploy/kafka/kafka.sh.",
            }
        },
        "channels": {attr: _channel(spec, flow) for attr, (spec, flow) in named.items()},
        "operations": _operations(named),
        "components": {
            "messages": {
                flow.message: _message(flow, payload_files[flow.model])
                for _, flow in named.values()
            },
        },
    }


def _flows_of(topics: Topics) -> dict[str, tuple[TopicSpec, Flow]]:
    named: dict[str, tuple[TopicSpec, Flow]] = {}
    for field in dataclasses.fields(topics):
        if field.name in PRIVATE:
            continue
        if field.name not in FLOWS:
            raise LookupError(f"topic {field.name!r} has no entry in asyncapi.FLOWS")
        named[field.name] = (getattr(topics, field.name), FLOWS[field.name])
    return named


def _label(party: str) -> str:
    return AGENTS.get(party, party)


def _channel(spec: TopicSpec, flow: Flow) -> dict[str, Any]:
    writers = [_label(w) for w in flow.writers]
    readers = [_label(r) for r in flow.readers]
    return {
        "address": spec.name,
        "title": spec.name,
        "description": (
            f"{flow.summary}\n\nKey: {flow.key}.\n"
            f"Produced by: {', '.join(writers)}.\nConsumed by: {', '.join(readers)}.\n"
        ),
        "messages": {flow.message: {"$ref": f"#/components/messages/{flow.message}"}},
        "bindings": {"kafka": {"topic": spec.name, "bindingVersion": KAFKA_BINDING_VERSION}},
        "x-internal": spec.internal,
        "x-produced-by": writers,
        "x-consumed-by": readers,
    }


def _message(flow: Flow, payload_file: str) -> dict[str, Any]:
    return {
        "name": flow.message,
        "title": flow.model.__name__,
        "summary": (flow.model.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "payload": {"$ref": f"./{payload_file}"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": flow.key},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _operations(named: dict[str, tuple[TopicSpec, Flow]]) -> dict[str, Any]:
    """One operation per agent and topic it reads or writes; outside parties have none."""
    operations: dict[str, Any] = {}
    for attr, (spec, flow) in named.items():
        sides = [("receive", a) for a in flow.readers] + [("send", a) for a in flow.writers]
        for action, agent in sides:
            if agent not in AGENTS:
                continue
            operations[f"{agent}{action.capitalize()}{_camel(attr)}"] = {
                "action": action,
                "summary": f"The {AGENTS[agent]} {action}s {spec.name}.",
                "channel": {"$ref": f"#/channels/{attr}"},
                "messages": [{"$ref": f"#/channels/{attr}/messages/{flow.message}"}],
            }
    return operations


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))
