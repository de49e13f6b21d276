"""P(alive) and the closed-form age at which it falls to a threshold, as the engine uses them."""

from __future__ import annotations

import ast
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journey.churn import models
from journey.engine import alive
from journey.engine.alive import (
    ChurnParams,
    p_alive,
    read_params_file,
    threshold_age,
    write_params_file,
)

positive = st.floats(min_value=0.01, max_value=50.0)
thresholds = st.floats(min_value=1e-4, max_value=1 - 1e-4)


@st.composite
def params(draw: st.DrawFn) -> ChurnParams:
    return ChurnParams(
        model=draw(st.sampled_from(alive.MODELS)),
        r=draw(positive),
        alpha=draw(st.floats(min_value=0.01, max_value=200.0)),
        a=draw(positive),
        b=draw(positive),
    )


@st.composite
def histories(draw: st.DrawFn, least_x: int = 0) -> tuple[int, float]:
    """(x, t_x): recency is zero exactly when there is no repeat purchase."""
    x = draw(st.integers(min_value=least_x, max_value=300))
    t_x = 0.0 if x == 0 else draw(st.floats(min_value=0.0, max_value=500.0))
    return x, t_x


def bgnbd(a: float = 0.793) -> ChurnParams:
    """The published CDNOW BG/NBD estimates, a realistic point to check behaviour at."""
    return ChurnParams(model="bgnbd", r=0.243, alpha=4.414, a=a, b=2.426)


@given(params(), histories(), thresholds)
def test_p_alive_at_the_threshold_age_equals_the_threshold(
    fitted: ChurnParams, history: tuple[int, float], threshold: float
) -> None:
    x, t_x = history

    age = threshold_age(fitted, x, t_x, threshold)

    if age is None:  # only BG/NBD without repeat purchases never falls
        assert (fitted.model, x) == ("bgnbd", 0)
    elif age == t_x:  # already at or below the threshold right after the last purchase
        assert p_alive(fitted, x, t_x, t_x) <= threshold
    elif math.isinf(age):  # the true age is beyond a float: it is still alive at the largest
        assert p_alive(fitted, x, t_x, sys.float_info.max) > threshold
    else:
        assert p_alive(fitted, x, t_x, age) == pytest.approx(threshold, rel=1e-9, abs=1e-12)


@given(params(), histories(least_x=1), thresholds)
def test_p_alive_is_above_the_threshold_before_the_threshold_age(
    fitted: ChurnParams, history: tuple[int, float], threshold: float
) -> None:
    x, t_x = history

    age = threshold_age(fitted, x, t_x, threshold)

    assert age is not None
    if t_x < age < math.inf:
        earlier = t_x + (age - t_x) * 0.99
        assert p_alive(fitted, x, t_x, earlier) >= threshold


@given(
    params(),
    histories(),
    st.floats(min_value=0.0, max_value=1e4),
    st.floats(min_value=0.0, max_value=1e4),
)
def test_p_alive_never_rises_with_age(
    fitted: ChurnParams, history: tuple[int, float], wait: float, more: float
) -> None:
    x, t_x = history

    sooner = p_alive(fitted, x, t_x, t_x + wait)
    later = p_alive(fitted, x, t_x, t_x + wait + more)

    assert 0.0 <= later <= sooner <= 1.0


def test_p_alive_strictly_falls_while_a_repeat_customer_stays_away() -> None:
    fitted = bgnbd()

    ages = [30.43, 35.0, 38.86, 52.0, 104.0]
    probabilities = [p_alive(fitted, 2, 30.43, age) for age in ages]

    assert probabilities == sorted(probabilities, reverse=True)
    assert len(set(probabilities)) == len(probabilities)


def test_bgnbd_customer_without_repeat_purchase_is_alive_forever() -> None:
    fitted = bgnbd()

    assert p_alive(fitted, 0, 0.0, 1e6) == 1.0
    assert threshold_age(fitted, 0, 0.0, 0.5) is None


def test_mbgnbd_customer_without_repeat_purchase_can_fall_to_the_threshold() -> None:
    fitted = ChurnParams(model="mbgnbd", r=0.525, alpha=6.183, a=0.891, b=1.614)

    age = threshold_age(fitted, 0, 0.0, 0.3)

    assert age is not None and 0.0 < age < math.inf
    assert p_alive(fitted, 0, 0.0, age) == pytest.approx(0.3)


def test_threshold_age_beyond_the_largest_float_is_infinite() -> None:
    fitted = ChurnParams(model="mbgnbd", r=0.01, alpha=1.0, a=0.01, b=10.0)

    assert threshold_age(fitted, 0, 0.0, 1e-4) == math.inf


def test_threshold_age_is_the_last_purchase_when_already_below_the_threshold() -> None:
    fitted = bgnbd(a=50.0)  # drop-out after a purchase is almost certain

    assert p_alive(fitted, 1, 3.0, 3.0) < 0.9
    assert threshold_age(fitted, 1, 3.0, 0.9) == 3.0


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_threshold_outside_the_open_unit_interval_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        threshold_age(bgnbd(), 1, 1.0, threshold)


def test_history_that_cannot_happen_is_refused() -> None:
    with pytest.raises(ValueError, match="recency 0"):
        p_alive(bgnbd(), 0, 2.0, 5.0)
    with pytest.raises(ValueError, match="before the last purchase"):
        p_alive(bgnbd(), 2, 5.0, 4.0)


@given(params(), histories(), st.floats(min_value=0.0, max_value=1e3))
def test_scalar_p_alive_agrees_with_the_array_model(
    fitted: ChurnParams, history: tuple[int, float], wait: float
) -> None:
    x, t_x = history

    scalar = p_alive(fitted, x, t_x, t_x + wait)
    array = models.p_alive(fitted, [x], [t_x], [t_x + wait])

    assert float(array[0]) == pytest.approx(scalar, rel=1e-9, abs=1e-300)


@given(params())
def test_params_survive_a_round_trip_through_json(fitted: ChurnParams) -> None:
    assert ChurnParams.from_dict(fitted.to_dict()) == fitted


def test_params_file_gives_the_named_model_or_the_most_likely(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    worse = replace(bgnbd(), log_likelihood=-9600.0)
    better = ChurnParams(
        model="mbgnbd", r=0.5, alpha=6.0, a=0.9, b=1.6, customers=2357, log_likelihood=-9582.0
    )

    write_params_file(path, [worse, better])

    assert read_params_file(path) == better
    assert read_params_file(path, "bgnbd") == worse


def test_params_with_a_non_positive_value_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha must be a positive"):
        ChurnParams.from_dict({"model": "bgnbd", "r": 1.0, "alpha": 0.0, "a": 1.0, "b": 1.0})


def test_alive_module_imports_only_the_standard_library() -> None:
    """The engine is pure: loading churn timers must not pull numpy or scipy into it."""
    tree = ast.parse(Path(alive.__file__).read_text(encoding="utf-8"))

    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])

    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
