"""Gamma-Gamma spend model: fit on repeat purchases, expected spend per purchase, and CLV.

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis";
the note "The Gamma-Gamma Model of Monetary Value" (Fader & Hardie 2013). A customer's mean
spend per repeat purchase m_x over x repeat purchases is a noisy reading of their own mean
zeta, which varies across customers as Gamma(q, v); spend per purchase is Gamma(p, nu).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import gammaln

from journey.churn.models import FitError, expected_purchases
from journey.engine.alive import PARAMS_FORMAT, ChurnParams

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SpendParams:
    """A fitted Gamma-Gamma spend model; amounts in the transactions' currency."""

    p: float
    q: float
    v: float
    customers: int = 0
    log_likelihood: float | None = None
    model: str = "gamma_gamma"

    def __post_init__(self) -> None:
        for name in ("p", "q", "v"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, not {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpendParams:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        missing = {"p", "q", "v"} - known.keys()
        if missing:
            raise ValueError(f"spend parameters lack {', '.join(sorted(missing))}")
        return cls(**known)


def log_likelihood(params: SpendParams, x: ArrayLike, mean_spend: ArrayLike) -> FloatArray:
    """Per-customer log-likelihood of mean spend m_x over x >= 1 repeat purchases."""
    xs, ms = _arrays(x, mean_spend)
    return _log_likelihood(params.p, params.q, params.v, xs, ms)


def fit_spend(x: ArrayLike, mean_spend: ArrayLike) -> SpendParams:
    """Maximum-likelihood p, q, v from the customers with repeat purchases and positive spend."""
    xs, ms = _arrays(x, mean_spend)
    keep = (xs > 0) & (ms > 0)
    xs, ms = xs[keep], ms[keep]
    if xs.size < 3:
        raise ValueError("the spend model needs at least 3 customers with repeat purchases")

    def objective(log_params: FloatArray) -> float:
        p, q, v = np.exp(log_params)
        with np.errstate(all="ignore"):
            value = -float(np.mean(_log_likelihood(p, q, v, xs, ms)))
        return value if math.isfinite(value) else math.inf

    start = np.log(np.array([1.0, 1.0, max(float(np.mean(ms)), 1e-6)]))
    result = minimize(objective, start, method="Nelder-Mead",
                      options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20_000,
                               "maxfev": 40_000})
    if not result.success or not math.isfinite(result.fun):
        raise FitError(f"gamma-gamma fit did not converge: {result.message}")
    p, q, v = (float(value) for value in np.exp(result.x))
    return SpendParams(p=p, q=q, v=v, customers=int(xs.size),
                       log_likelihood=-float(result.fun) * xs.size)


def expected_spend(params: SpendParams, x: ArrayLike, mean_spend: ArrayLike) -> FloatArray:
    """E[spend per purchase | x, m_x] = (p (v + x m_x)) / (p x + q - 1); the population mean
    p v / (q - 1) for customers without repeat purchases (x = 0)."""
    xs, ms = _arrays(x, mean_spend)
    if params.q <= 1:
        raise ValueError(f"expected spend needs q > 1, the fitted q is {params.q:.4g}")
    ms = np.where(xs > 0, ms, 0.0)
    return np.asarray(params.p * (params.v + xs * ms) / (params.p * xs + params.q - 1.0),
                      dtype=np.float64)


def clv(
    churn: ChurnParams,
    spend: SpendParams,
    horizon: int,
    x: ArrayLike,
    t_x: ArrayLike,
    age: ArrayLike,
    mean_spend: ArrayLike,
    *,
    margin: float = 1.0,
    discount_rate: float = 0.0,
) -> FloatArray:
    """Expected value over `horizon` model units: purchases expected in each unit, times the
    expected spend and the margin, discounted by `discount_rate` per unit."""
    if horizon < 0:
        raise ValueError(f"the horizon must not be negative, not {horizon}")
    per_purchase = expected_spend(spend, x, mean_spend) * margin
    total = np.zeros_like(per_purchase)
    previous = np.zeros_like(per_purchase)
    for step in range(1, horizon + 1):
        upto = expected_purchases(churn, float(step), x, t_x, age)
        total += (upto - previous) / (1.0 + discount_rate) ** step
        previous = upto
    return np.asarray(total * per_purchase, dtype=np.float64)


def read_spend_params(path: Path) -> SpendParams | None:
    """The spend model of a params file from `journey churn fit`, or None if it has none."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("format") != PARAMS_FORMAT:
        raise ValueError(f"{path}: not a {PARAMS_FORMAT} document")
    spend = document.get("spend")
    if spend is None:
        return None
    if not isinstance(spend, dict):
        raise ValueError(f"{path}: 'spend' must be an object")
    return SpendParams.from_dict(spend)


def add_spend_params(path: Path, spend: SpendParams) -> None:
    """Add the spend model to a params file written by write_params_file."""
    document = json.loads(path.read_text(encoding="utf-8"))
    document["spend"] = spend.to_dict()
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _log_likelihood(
    p: float, q: float, v: float, xs: FloatArray, ms: FloatArray
) -> FloatArray:
    px = p * xs
    return np.asarray(
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
        + (px - 1.0) * np.log(ms) + px * np.log(xs) - (px + q) * np.log(xs * ms + v),
        dtype=np.float64,
    )


def _arrays(x: ArrayLike, mean_spend: ArrayLike) -> tuple[FloatArray, FloatArray]:
    xs = np.asarray(x, dtype=np.float64)
    ms = np.asarray(mean_spend, dtype=np.float64)
    if xs.shape != ms.shape:
        raise ValueError(f"x and mean spend differ in shape: {xs.shape}, {ms.shape}")
    if np.any(xs < 0) or np.any(~np.isfinite(ms)) or np.any(ms < 0):
        raise ValueError("need x >= 0 and a finite, non-negative mean spend for every customer")
    return xs, ms
