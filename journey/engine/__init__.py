"""The pure journey engine: (state, event) -> (new state, outputs), in event time.

Nothing in this package imports Faust, Kafka, Prometheus or reads the wall clock.
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
