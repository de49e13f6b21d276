"""The pure journey engine: (state, event) -> (new state, outputs), in event time.

Nothing in this package imports Faust, Kafka, Prometheus or reads the wall clock.
"""

from journey.engine.core import Engine, Step
from journey.engine.events import Event
from journey.engine.outputs import Output, StageChange, TriggerRequest
from journey.engine.state import CustomerState

__all__ = ["CustomerState", "Engine", "Event", "Output", "StageChange", "Step", "TriggerRequest"]
