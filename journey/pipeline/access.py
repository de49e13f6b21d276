"""Who may do what on the web API: the read token, the erase token, and the rate of erasures.

Two bearer tokens, so the holders who only look customers up (support, dashboards,
Prometheus) cannot erase anyone: JOURNEY_WEB_READ_TOKEN reads; JOURNEY_WEB_TOKEN reads and
erases. The erase token keeps the name the single token had, so a deployment that set it
keeps every right it had. Pure: no web framework here, so it is tested without a server.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import SecretStr

Role = Literal["read", "erase"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request that must not go on: its status, error code, message and headers."""

    status: int
    error: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Tokens:
    """Judges a request's Authorization header against the configured tokens."""

    def __init__(self, erase: SecretStr | None, read: SecretStr | None) -> None:
        self._erase = _secret_bytes(erase)
        self._read = _secret_bytes(read)

    @property
    def asked(self) -> bool:
        """Whether any token is set: without one, reads are open and erasure is refused."""
        return self._erase is not None or self._read is not None

    def role(self, authorization: str) -> Role | Refusal:
        """What the bearer of this header may do, or why they may do nothing."""
        if not self.asked:
            return "read"
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return Refusal(401, "unauthenticated",
                           "send a token as 'Authorization: Bearer <token>' (JOURNEY_WEB_TOKEN "
                           "or JOURNEY_WEB_READ_TOKEN)", _CHALLENGE)
        presented = given.strip().encode()
        # Both compared every time, so the time taken says nothing about which one is set.
        erases = self._erase is not None and hmac.compare_digest(presented, self._erase)
        reads = self._read is not None and hmac.compare_digest(presented, self._read)
        if erases:
            return "erase"
        if reads:
            return "read"
        return Refusal(401, "unauthenticated", "the bearer token is not valid", _CHALLENGE)

    def may_erase(self, role: Role) -> Refusal | None:
        """None when this role may erase; otherwise the 403 that says what is missing."""
        if self._erase is None:
            return Refusal(403, "token_required",
                           "erasure over HTTP needs JOURNEY_WEB_TOKEN to be set")
        if role != "erase":
            return Refusal(403, "forbidden",
                           "this token may only read; erasure needs JOURNEY_WEB_TOKEN")
        return None


class RateLimit:
    """At most `per_minute` erasures a minute on this worker, as a token bucket: a burst of
    up to `per_minute` at once, then one every 60/per_minute seconds. A leaked erase token
    (or a runaway script) erases at most this many customers a minute per worker."""

    def __init__(self, per_minute: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, not {per_minute}")
        self._capacity = float(per_minute)
        self._per_second = per_minute / 60.0
        self._clock = clock
        self._tokens = self._capacity
        self._at = clock()

    def take(self) -> int:
        """0 when one erasure may go ahead now (and it is counted); otherwise the whole
        seconds to wait before the next one may, for a Retry-After header."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._per_second)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - self._tokens) / self._per_second))


def _secret_bytes(secret: SecretStr | None) -> bytes | None:
    value = secret.get_secret_value() if secret is not None else ""
    return value.encode() if value else None
