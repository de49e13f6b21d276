"""Where every record the pipeline writes goes, and in which bytes: the one place.

Outputs of the engine go to their contract topic keyed by customer; rejected records go to
the dead-letter topic with their reason and original bytes, each keyed by where it came from
(journey/contract/deadletters.py: an erasure tombstones them one by one); touchpoints not
keyed by their customer go to the internal events topic; ticks are forwarded to every
events partition; customer states go to the table's changelog, in the partition of their
customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from journey.contract import codec
from journey.contract.deadletters import dead_letter_key
from journey.contract.decode import Rejection
from journey.contract.records import CustomerErased
from journey.contract.topics import Topics
from journey.engine import Output, StageChange, TriggerRequest
from journey.engine.events import from_epoch_ms
from journey.pipeline.processor import Erasure
from journey.pipeline.timekeeping import TICK_HEADER, TICK_VALUE, encode_tick

Headers = tuple[tuple[str, bytes], ...]
TICK_HEADERS: Headers = ((TICK_HEADER, TICK_VALUE),)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce. `partition` None lets the producer's partitioner choose."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    headers: Headers | None = None


@dataclass(frozen=True, slots=True)
class Router:
    topics: Topics

    def output(self, output: Output) -> Outgoing:
        key = output.customer_id.encode()
        if isinstance(output, StageChange):
            return Outgoing(self.topics.stage_changes.name, key, codec.stage_change_bytes(output))
        if isinstance(output, TriggerRequest):
            return Outgoing(self.topics.triggers.name, key, codec.trigger_bytes(output))
        return Outgoing(self.topics.trigger_audit.name, key, codec.audit_bytes(output))

    def dead_letter(
        self, rejection: Rejection, *, topic: str, partition: int, offset: int,
        key: bytes | None, value: bytes | None, at: datetime,
    ) -> Outgoing:
        record = codec.dead_letter_bytes(rejection, topic=topic, partition=partition,
                                         offset=offset, key=key, value=value, at=at)
        return Outgoing(self.topics.dead_letters.name,
                        dead_letter_key(topic, partition, offset), record)

    def rekey(self, customer_id: str, canonical: bytes) -> Outgoing:
        return Outgoing(self.topics.events.name, customer_id.encode(), canonical)

    def ticks(self, at_ms: int, source: int) -> list[Outgoing]:
        """A tick read on touchpoints partition `source`, for every events partition."""
        value = encode_tick(at_ms, "ingest", source=source)
        name = self.topics.events.name
        return [Outgoing(name, None, value, partition=p, headers=TICK_HEADERS)
                for p in range(self.topics.events.partitions)]

    def state(self, customer_id: str, partition: int, value: bytes | None) -> Outgoing:
        return Outgoing(self.topics.state_changelog.name, customer_id.encode(), value,
                        partition=partition)

    def erasure(self, erasure: Erasure) -> Outgoing:
        record = CustomerErased(
            erasure_id=erasure.event_id, customer_id=erasure.customer_id,
            erased_at=from_epoch_ms(erasure.at_ms), requested_via=erasure.channel,
            pending_triggers_dropped=erasure.pending_dropped,
        )
        return Outgoing(self.topics.erasures.name, erasure.customer_id.encode(),
                        record.model_dump_json().encode())

    def erasure_marker(self, customer_id: str, partition: int, value: bytes) -> Outgoing:
        return Outgoing(self.topics.erasure_changelog.name, customer_id.encode(), value,
                        partition=partition)
