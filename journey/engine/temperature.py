"""Temperature: how well a contact knows the business (cold, warm, hot), in event time.

Its changes come out as stage changes of the built-in journey "temperature". It also cools
with time alone, so it has a deadline like the detections (next_change_ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from journey.engine.outputs import Output, StageChange, Temperature
from journey.engine.state import CustomerState, decay

#: The built-in journey whose stages are the temperature (cold, warm, hot).
TEMPERATURE = "temperature"


@dataclass(frozen=True, slots=True)
class TemperatureRules:
    """seed 001 temperature with our cooling choices."""

    hot_engagement: float
    engagement_half_life_ms: int
    cold_after_ms: int

    def at(self, state: CustomerState, at_ms: int) -> Temperature:
        """cold = does not know you (or quiet for cold_after); warm = left contacts or came
        by referral; hot = subscribed and interacting regularly."""
        if state.last_touch_ms is None or at_ms - state.last_touch_ms >= self.cold_after_ms:
            return "cold"
        engaged = decay(state.engagement, state.engagement_ms, at_ms,
                        self.engagement_half_life_ms)
        if state.subscribed and engaged >= self.hot_engagement:
            return "hot"
        if state.has_contact or state.referred:
            return "warm"
        return "cold"

    def next_change_ms(self, state: CustomerState) -> int | None:
        """When the temperature will next change if nothing happens, or None."""
        if state.temperature == "cold" or state.last_touch_ms is None:
            return None
        moments = [state.last_touch_ms + self.cold_after_ms]
        if state.temperature == "hot" and state.engagement > 0:
            ratio = state.engagement / self.hot_engagement
            if ratio > 1:
                moments.append(state.engagement_ms + math.ceil(
                    self.engagement_half_life_ms * math.log2(ratio)) + 1)
        return min(moments)

    def update(self, state: CustomerState, at_ms: int, cause: str, outputs: list[Output]) -> None:
        """Move the temperature to what it is at at_ms; a change is a stage change of the
        built-in journey "temperature" (the first one comes from no stage)."""
        now = self.at(state, at_ms)
        if now == state.temperature and state.temperature_ms is not None:
            return
        previous = None if state.temperature_ms is None else state.temperature
        spent = None if state.temperature_ms is None else max(0, at_ms - state.temperature_ms)
        state.temperature = now
        state.temperature_ms = at_ms
        outputs.append(StageChange(state.customer_id, TEMPERATURE, previous, now, cause, at_ms,
                                   spent))
