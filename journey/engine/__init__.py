"""The pure journey engine: (state, event) -> (new state, outputs), in event time.

Nothing in this package imports Faust, Kafka, Prometheus or reads the wall clock.

Where each rule lives:

- core.py         Engine: apply one event, on_time, the detection loop, next deadlines
- config.py       EngineConfig; the lifecycle settings definitions must agree on; policies
- counters.py     touches, attribution, purchases, engagement, consent, duplicate ids
- temperature.py  cold / warm / hot, and when it cools
- stages.py       compiled journeys: scores, exits, stage moves, rules; lifecycle status
- detections.py   the detection registry: each kind's deadline, status, trigger, details
- deadlines.py    the customer's pending detections, and firing one
- release.py      pending triggers released through the policy; the decisions kept
- policy.py       the trigger policy: consent, holdout, once, cooldown, quiet hours, budget
- definitions.py, predicates.py, state.py, events.py, outputs.py: the data they work on
"""

from journey.engine.core import Engine, EngineConfig, Step
from journey.engine.definitions import JourneyDefinition, load_definitions, load_preset
from journey.engine.events import Event
from journey.engine.outputs import Output, StageChange, TriggerRequest, TriggerSuppressed
from journey.engine.state import CustomerState

__all__ = [
    "CustomerState",
    "Engine",
    "EngineConfig",
    "Event",
    "JourneyDefinition",
    "Output",
    "StageChange",
    "Step",
    "TriggerRequest",
    "TriggerSuppressed",
    "load_definitions",
    "load_preset",
]
