"""Fitted churn parameters, P(alive) and its closed-form threshold age: standard library only."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, cast

ModelName = Literal["bgnbd", "mbgnbd"]
MODELS: tuple[ModelName, ...] = ("bgnbd", "mbgnbd")
UNIT_DAYS: dict[str, int] = {"days": 1, "weeks": 7}
PARAMS_FORMAT = "journey.churn.params/1"


@dataclass(frozen=True, slots=True)
class ChurnParams:
    """One fitted model. Ages and recencies given with it are in `unit` since first purchase."""

    model: ModelName
    r: float
    alpha: float
    a: float
    b: float
    unit: str = "weeks"
    customers: int = 0
    log_likelihood: float | None = None
    calibration_end: str | None = None

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, not {self.model!r}")
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, not {value!r}")
        if self.unit not in UNIT_DAYS:
            raise ValueError(f"unit must be one of {', '.join(UNIT_DAYS)}, not {self.unit!r}")

    @property
    def unit_days(self) -> int:
        return UNIT_DAYS[self.unit]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChurnParams:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        missing = {"model", "r", "alpha", "a", "b"} - known.keys()
        if missing:
            raise ValueError(f"churn parameters lack {', '.join(sorted(missing))}")
        return cls(**known)


def p_alive(params: ChurnParams, x: int, t_x: float, age: float) -> float:
    """P(alive) of a customer with x repeat purchases, the last at t_x, observed at `age`."""
    _check_history(x, t_x)
    if age < t_x:
        raise ValueError(f"age {age} is before the last purchase at {t_x}")
    if params.model == "bgnbd" and x == 0:
        return 1.0  # BG/NBD lets customers drop out only after a repeat purchase.
    z = _log_dead_odds_at_last(params, x) + (params.r + x) * _log_growth(params, t_x, age)
    if z > 0:
        e = math.exp(-z)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(z))


def threshold_age(params: ChurnParams, x: int, t_x: float, threshold: float) -> float | None:
    """The age at which P(alive) first falls to `threshold`; None if it never does.

    Never below t_x: when P(alive) is already at or under the threshold right after the last
    purchase, the answer is t_x itself. math.inf when the age is beyond a float.
    """
    _check_history(x, t_x)
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be strictly between 0 and 1, not {threshold}")
    if params.model == "bgnbd" and x == 0:
        return None
    # Solve (r + x) * log((alpha + T) / (alpha + t_x)) = log((1 - p) / p) - log dead-odds.
    target = math.log1p(-threshold) - math.log(threshold) - _log_dead_odds_at_last(params, x)
    if target <= 0.0:
        return t_x
    try:
        return t_x + (params.alpha + t_x) * math.expm1(target / (params.r + x))
    except OverflowError:
        return math.inf


def write_params_file(path: Path, models: list[ChurnParams]) -> None:
    """Write fitted models as one JSON document, the file a worker loads."""
    document = {"format": PARAMS_FORMAT, "models": [m.to_dict() for m in models]}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def read_params_file(path: Path, model: ModelName | None = None) -> ChurnParams:
    """The named model from a params file; unnamed, the one with the highest log-likelihood."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("format") != PARAMS_FORMAT:
        raise ValueError(f"{path}: not a {PARAMS_FORMAT} document")
    entries = document.get("models")
    if not isinstance(entries, list) or not all(isinstance(m, dict) for m in entries):
        raise ValueError(f"{path}: 'models' must be a list of objects")
    models = [ChurnParams.from_dict(cast(dict[str, Any], m)) for m in entries]
    if model is not None:
        models = [m for m in models if m.model == model]
    if not models:
        raise ValueError(f"{path}: no {model or 'churn'} model in the file")
    return max(models, key=lambda m: -math.inf if m.log_likelihood is None else m.log_likelihood)


def _log_dead_odds_at_last(params: ChurnParams, x: int) -> float:
    """log of P(dead)/P(alive) right after the last purchase: a / (b + x - 1) or a / (b + x)."""
    shift = 1 if params.model == "bgnbd" else 0
    return math.log(params.a) - math.log(params.b + x - shift)


def _log_growth(params: ChurnParams, t_x: float, age: float) -> float:
    """log((alpha + age) / (alpha + t_x)), accurate near t_x and without overflow far from it."""
    ratio = (age - t_x) / (params.alpha + t_x)
    if ratio < 1.0:
        return math.log1p(ratio)
    return math.log(params.alpha + age) - math.log(params.alpha + t_x)


def _check_history(x: int, t_x: float) -> None:
    if x < 0 or t_x < 0:
        raise ValueError(f"purchases ({x}) and recency ({t_x}) must not be negative")
    if x == 0 and t_x != 0:
        raise ValueError(f"a customer without repeat purchases has recency 0, not {t_x}")
