"""How dead letters are keyed, and which customers a dead letter names.

A dead letter keeps a rejected record's original bytes, which may be personal data. So that
an erasure can reach it, the dead-letter topic is compacted as well as time-limited, and
every dead letter has a key of its own: where the record came from,
`<source topic>:<partition>:<offset>`. That key names nobody, and a record dead-lettered
again after a replay replaces its earlier copy. After an erasure the worker writes a
tombstone under the key of each dead letter that names the customer
(journey/stream/sweeper.py); compaction then removes the bytes.
"""

from __future__ import annotations

import base64
import binascii

import orjson


def dead_letter_key(topic: str, partition: int, offset: int) -> bytes:
    """The key of the dead letter of the record at this offset."""
    return f"{topic}:{partition}:{offset}".encode()


def named_customers(dead_letter: bytes) -> set[str]:
    """The customer ids a dead letter's original bytes name: its original key, and the
    `customer_id` of its original value when that is a JSON object with one. Empty for
    bytes that are no dead letter (nothing of theirs is judged to name anyone)."""
    try:
        doc = orjson.loads(dead_letter)
    except orjson.JSONDecodeError:
        return set()
    if not isinstance(doc, dict):
        return set()
    named: set[str] = set()
    key = _decoded(doc.get("original_key_b64"))
    if key:
        named.add(key.decode("utf-8", "replace"))
    value = _decoded(doc.get("original_value_b64"))
    if value:
        try:
            original = orjson.loads(value)
        except orjson.JSONDecodeError:
            original = None
        if isinstance(original, dict) and isinstance(original.get("customer_id"), str):
            named.add(original["customer_id"])
    return named


def _decoded(text: object) -> bytes | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
