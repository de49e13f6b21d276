"""The trigger policy: the one place that decides, before anything is emitted, whether a
fired trigger is sent now, later or never - and says why.

Checks, in order, when a trigger is released:

1. expired       its offer ran out (valid_until) before it could be sent
2. opted_out     marketing to a person who opted out (seed 003); service triggers pass
3. held_out      the customer is in the holdout group (stable hash), so lift is measurable
4. already_sent  the rule sends once per customer, and it did
   cooldown      the rule sent to this customer too recently
5. quiet_hours   marketing inside the customer's local quiet hours: deferred to the next
                 allowed time (daylight saving handled by the IANA zone), or dropped
6. contact_budget  the customer had the most marketing contacts the window allows;
                 triggers released together are admitted by priority

Only the engine calls it; it is pure: the time is the trigger's release time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from journey.engine.events import to_epoch_ms
from journey.engine.outputs import TriggerRequest
from journey.engine.state import CustomerState


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in local time; start > end wraps midnight (21:00 -> 08:00)."""

    start: time
    end: time
    action: Literal["defer", "drop"] = "defer"

    def next_allowed_ms(self, at_ms: int, zone: ZoneInfo) -> int | None:
        """None when at_ms is outside quiet hours; else the first instant after them."""
        local = datetime.fromtimestamp(at_ms / 1000, tz=zone)
        now = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            quiet = self.start <= now < self.end
            end_day = local.date()
        else:
            quiet = now >= self.start or now < self.end
            end_day = local.date() + timedelta(days=1) if now >= self.start else local.date()
        if not quiet:
            return None
        # Built in local wall time, then converted: the UTC offset of that day applies, so a
        # daylight-saving change overnight moves the UTC instant, not the local 08:00.
        end = datetime.combine(end_day, self.end, tzinfo=zone)
        return to_epoch_ms(end)


@dataclass(frozen=True, slots=True)
class ContactBudget:
    """At most `count` marketing triggers per customer in any `window_ms`."""

    count: int
    window_ms: int


@dataclass(frozen=True, slots=True)
class RulePolicy:
    cooldown_ms: int | None = None
    once: bool = False
    quiet_action: Literal["defer", "drop"] | None = None


@dataclass(frozen=True, slots=True)
class JourneyPolicy:
    """One journey's policy, with the deployment's defaults filled in."""

    hold_ms: int = 0
    quiet_hours: QuietHours | None = None
    holdout: float = 0.0
    cooldown_ms: int | None = None
    rules: dict[str, RulePolicy] = field(default_factory=dict)

    def rule(self, name: str) -> RulePolicy:
        """The rule's own policy, or the journey's defaults."""
        found = self.rules.get(name)
        return found if found is not None else _default_rule(self.cooldown_ms)


@lru_cache(maxsize=64)
def _default_rule(cooldown_ms: int | None) -> RulePolicy:
    # One per cooldown, not one per decision: it is asked for every trigger released.
    return RulePolicy(cooldown_ms=cooldown_ms)


@dataclass(frozen=True, slots=True)
class Decision:
    kind: Literal["send", "suppress", "defer", "hold_out"]
    reason: str = ""
    until_ms: int | None = None


SEND = Decision("send")


@lru_cache(maxsize=1024)
def zone_of(name: str | None, default: str) -> ZoneInfo:
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def holdout_share(customer_id: str, salt: str) -> float:
    """A stable number in [0, 1) per customer: below the holdout share, held out."""
    digest = hashlib.blake2b(f"{salt}\x1f{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # RFC 4648
#: Every pair of base32 letters, by the 10 bits they encode.
_B32_PAIRS = tuple(a + b for a in _B32 for b in _B32)


def offer_code(trigger_id: str, secret: str) -> str:
    """A personal offer code, deterministic and unique per customer and trigger, and not
    guessable from the trigger id without the deployment's secret: the first 12 base32
    letters of a keyed hash, in three groups of four."""
    digest = hashlib.blake2b(trigger_id.encode(), key=secret.encode()[:64], digest_size=10)
    n = int.from_bytes(digest.digest(), "big")  # 80 bits; the code shows the first 60
    p = _B32_PAIRS  # base64.b32encode is pure Python, and this runs for every trigger sent
    return (f"{p[n >> 70]}{p[(n >> 60) & 1023]}-{p[(n >> 50) & 1023]}{p[(n >> 40) & 1023]}-"
            f"{p[(n >> 30) & 1023]}{p[(n >> 20) & 1023]}")


@dataclass(frozen=True, slots=True)
class TriggerPolicy:
    """Deployment-wide parts of the policy; journey parts come with each call."""

    budget: ContactBudget | None = None
    default_timezone: str = "UTC"
    holdout_salt: str = "journey"
    offer_secret: str = ""

    def decide(
        self, state: CustomerState, request: TriggerRequest, journey: JourneyPolicy,
        at_ms: int,
    ) -> Decision:
        marketing = request.kind == "marketing"
        valid_until = request.valid_until_ms
        if valid_until is not None and at_ms > valid_until:
            return Decision("suppress", "expired")
        if marketing and state.opted_out:
            return Decision("suppress", "opted_out")
        if marketing and journey.holdout > 0 and (
            holdout_share(state.customer_id, self.holdout_salt) < journey.holdout
        ):
            return Decision("hold_out", "holdout_group")
        rule = journey.rule(request.rule)
        last = state.sent.get(f"{request.journey}/{request.rule}")
        if last is not None:
            if rule.once:
                return Decision("suppress", "already_sent")
            if rule.cooldown_ms is not None and at_ms - last < rule.cooldown_ms:
                return Decision("suppress", "cooldown")
        if marketing and journey.quiet_hours is not None:
            quiet = journey.quiet_hours
            until = quiet.next_allowed_ms(at_ms, zone_of(state.timezone, self.default_timezone))
            if until is not None:
                if (rule.quiet_action or quiet.action) == "drop":
                    return Decision("suppress", "quiet_hours")
                return Decision("defer", "quiet_hours", until)
        if marketing and self.budget is not None:
            window_start = at_ms - self.budget.window_ms
            recent = sum(1 for t in state.contacts if t > window_start)
            if recent >= self.budget.count:
                return Decision("suppress", "contact_budget")
        return SEND
