"""BG/NBD and MBG/NBD on arrays: per-customer log-likelihood, maximum-likelihood fit, P(alive).

BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way", equation 6.
MBG/NBD: Batislam, Denizel & Filiztekin (2007); a customer may also drop out right after the
first purchase, so P(alive) < 1 even without repeat purchases.

Both likelihoods have one shape, with k = 0 for BG/NBD and k = 1 for MBG/NBD:

    L = Gamma(r+x) alpha^r / (Gamma(r) B(a, b))
        * [ B(a, b+x+k) / (alpha+T)^(r+x)              still alive at age T
          + B(a+1, b+x+k-1) / (alpha+t_x)^(r+x) ]      dropped out after the purchase at t_x

where BG/NBD has no second term for x = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from journey.engine.alive import MODELS, ChurnParams, ModelName

FloatArray = NDArray[np.float64]
GRADIENT_TOLERANCE = 1e-7  # on the mean log-likelihood per customer, in log-parameters
RUNAWAY_LOG_PARAM = 7.0  # a parameter beyond e^±7 means the optimiser is heading for a boundary


class FitError(RuntimeError):
    """The optimiser did not reach a maximum of the likelihood."""


def log_likelihood(params: ChurnParams, x: ArrayLike, t_x: ArrayLike, age: ArrayLike) -> FloatArray:
    """Per-customer log-likelihood of x repeat purchases, the last at age t_x, now at `age`."""
    xs, txs, ages = _arrays(x, t_x, age)
    k = _K[params.model]
    return _Terms.of(params.r, params.alpha, params.a, params.b, k, xs, txs, ages).value


def p_alive(params: ChurnParams, x: ArrayLike, t_x: ArrayLike, age: ArrayLike) -> FloatArray:
    """P(alive) per customer; the array twin of journey.engine.alive.p_alive."""
    xs, txs, ages = _arrays(x, t_x, age)
    shift = 1.0 - _K[params.model]
    # log((alpha + age) / (alpha + t_x)): log1p near t_x, a difference of logs far from it.
    with np.errstate(over="ignore"):  # an infinite ratio takes the far branch below
        ratio = (ages - txs) / (params.alpha + txs)
    near = np.log1p(np.minimum(ratio, 1.0))
    far = np.log(params.alpha + ages) - np.log(params.alpha + txs)
    growth = np.where(ratio < 1.0, near, far)
    # BG/NBD customers without repeat purchases are alive; b + x - 1 may be <= 0 for them.
    odds_base = np.where(xs + params.b - shift > 0, xs + params.b - shift, 1.0)
    log_odds = np.log(params.a) - np.log(odds_base) + (params.r + xs) * growth
    alive = np.asarray(expit(-log_odds), dtype=np.float64)
    if params.model == "bgnbd":
        alive = np.where(xs == 0, 1.0, alive)
    return alive


def expected_purchases(
    params: ChurnParams, horizon: float, x: ArrayLike, t_x: ArrayLike, age: ArrayLike
) -> FloatArray:
    """Expected purchases in the next `horizon` units, given each customer's history.

    BG/NBD: Fader, Hardie & Lee (2005), equation 10; MBG/NBD: Batislam et al. (2007).
    E[Y(t) | x, t_x, T] = A * (1 - ((alpha+T)/(alpha+T+t))^(r+x) * 2F1(r+x, b+x+k; a+b+x-1+k;
    t/(alpha+T+t))) / (1 + D * a/(b+x-1+k) * ((alpha+T)/(alpha+t_x))^(r+x)), with
    A = (a+b+x-1+k)/(a-1), D = [x > 0] for BG/NBD and 1 for MBG/NBD.
    """
    if not horizon >= 0:
        raise ValueError(f"the horizon must not be negative, not {horizon}")
    xs, txs, ages = _arrays(x, t_x, age)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    k = _K[params.model]
    t = float(horizon)
    z = t / (alpha + ages + t)
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = np.exp((r + xs) * (np.log(alpha + ages) - np.log(alpha + ages + t)))
        bracket = 1.0 - shrink * hyp2f1(r + xs, b + xs + k, a + b + xs - 1.0 + k, z)
        lead = (a + b + xs - 1.0 + k) / (a - 1.0)
        odds_base = np.where(b + xs - 1.0 + k > 0, b + xs - 1.0 + k, 1.0)
        dead_odds = (a / odds_base) * np.exp(
            (r + xs) * (np.log(alpha + ages) - np.log(alpha + txs)))
    if params.model == "bgnbd":
        dead_odds = np.where(xs > 0, dead_odds, 0.0)
    # + 0.0: a zero horizon gives 0, not -0, in the CSV
    return np.asarray(lead * bracket / (1.0 + dead_odds) + 0.0, dtype=np.float64)


def fit(
    model: ModelName,
    x: ArrayLike,
    t_x: ArrayLike,
    age: ArrayLike,
    *,
    unit: str = "weeks",
    calibration_end: str | None = None,
) -> ChurnParams:
    """Maximum-likelihood parameters, optimised on their logarithms so they stay positive."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    xs, txs, ages = _arrays(x, t_x, age)
    if xs.size == 0:
        raise ValueError("no customers to fit")
    # Customers with the same history add the same term: fit on distinct rows, weighted.
    rows, counts = np.unique(np.stack([xs, txs, ages], axis=1), axis=0, return_counts=True)
    weights = counts / xs.size
    k = _K[model]

    def objective(log_params: FloatArray) -> tuple[float, FloatArray]:
        """Minus the mean log-likelihood and its gradient in log-parameters."""
        r, alpha, a, b = np.exp(log_params)
        with np.errstate(all="ignore"):  # the line search may probe extreme values
            terms = _Terms.of(r, alpha, a, b, k, rows[:, 0], rows[:, 1], rows[:, 2])
            value = -float(weights @ terms.value)
            gradient = -(terms.gradient() @ weights) * np.exp(log_params)
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            return np.inf, np.zeros(4)
        return value, gradient

    result = minimize(objective, np.zeros(4), jac=True, method="BFGS", options={"gtol": 1e-10})
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    if not np.isfinite(result.fun) or np.max(np.abs(result.jac)) > GRADIENT_TOLERANCE:
        reached = f"r={r:.3g} alpha={alpha:.3g} a={a:.3g} b={b:.3g}"
        hint = ""
        if np.max(np.abs(result.x)) > RUNAWAY_LOG_PARAM:  # the maximum lies at infinity
            hint = "; the data hold too little information (too few customers or repeats?)"
        raise FitError(f"{model} fit did not converge ({result.message}) at {reached}{hint}")
    return ChurnParams(
        model=model,
        r=r,
        alpha=alpha,
        a=a,
        b=b,
        unit=unit,
        customers=int(xs.size),
        log_likelihood=-float(result.fun) * xs.size,
        calibration_end=calibration_end,
    )


_K: dict[ModelName, float] = {"bgnbd": 0.0, "mbgnbd": 1.0}


@dataclass(frozen=True, slots=True)
class _Terms:
    """The likelihood's pieces per customer, kept to give the gradient without recomputing."""

    r: float
    alpha: float
    a: float
    b: float
    x: FloatArray
    t_x: FloatArray
    age: FloatArray
    bx: FloatArray  # b + x + k
    can_drop: NDArray[np.bool_]
    value: FloatArray
    w_stays: FloatArray  # posterior weight of "still alive at T"
    w_drops: FloatArray

    @classmethod
    def of(
        cls,
        r: float,
        alpha: float,
        a: float,
        b: float,
        k: float,
        x: FloatArray,
        t_x: FloatArray,
        age: FloatArray,
    ) -> _Terms:
        bx = b + x + k
        can_drop = (x > 0) | (k > 0)
        stays = betaln(a, bx) - (r + x) * np.log(alpha + age)
        drops = betaln(a + 1, np.where(can_drop, bx - 1, 1.0)) - (r + x) * np.log(alpha + t_x)
        drops = np.where(can_drop, drops, -np.inf)
        both = np.logaddexp(stays, drops)
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        w_stays, w_drops = np.exp(stays - both), np.exp(drops - both)
        return cls(r, alpha, a, b, x, t_x, age, bx, can_drop, common + both, w_stays, w_drops)

    def gradient(self) -> FloatArray:
        """d log L / d (r, alpha, a, b), one column per customer."""
        r, alpha, a, b, x = self.r, self.alpha, self.a, self.b, self.x
        ws, wd = self.w_stays, self.w_drops
        log_t, log_tx = np.log(alpha + self.age), np.log(alpha + self.t_x)
        d_r = digamma(r + x) - digamma(r) + np.log(alpha) - ws * log_t - wd * log_tx
        d_alpha = r / alpha - (r + x) * (ws / (alpha + self.age) + wd / (alpha + self.t_x))
        # d/dp log B(p, q) = ψ(p) - ψ(p + q); both terms' betas sum to a + b + x + k.
        psi_sum = digamma(a + self.bx)
        d_a = (
            digamma(a + b)
            - digamma(a)
            + ws * (digamma(a) - psi_sum)
            + wd * (digamma(a + 1) - psi_sum)
        )
        drop_b = np.where(self.can_drop, digamma(np.where(self.can_drop, self.bx - 1, 1.0)), 0.0)
        d_b = (
            digamma(a + b)
            - digamma(b)
            + ws * (digamma(self.bx) - psi_sum)
            + wd * (drop_b - psi_sum)
        )
        return np.stack([d_r, d_alpha, d_a, d_b])


def _arrays(
    x: ArrayLike, t_x: ArrayLike, age: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    xs, txs, ages = (np.asarray(v, dtype=np.float64) for v in (x, t_x, age))
    if not xs.shape == txs.shape == ages.shape:
        raise ValueError(f"x, t_x and age differ in shape: {xs.shape}, {txs.shape}, {ages.shape}")
    if np.any(xs < 0) or np.any(txs < 0) or np.any(txs > ages):
        raise ValueError("need x >= 0 and 0 <= t_x <= age for every customer")
    return xs, txs, ages
