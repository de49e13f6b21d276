"""The engine a deployment's settings describe: shared by the worker and the in-process run."""

from __future__ import annotations

from journey.engine import Engine, EngineConfig, load_definitions
from journey.engine.alive import read_params_file
from journey.engine.policy import ContactBudget, QuietHours
from journey.pipeline.setting_values import parse_budget, parse_quiet_hours
from journey.pipeline.settings import Settings


def build_engine(settings: Settings) -> Engine:
    """The engine for a deployment; raises DefinitionError on a bad journey definition."""
    hold_s = settings.trigger_hold_s
    quiet = None
    if settings.quiet_hours is not None:
        quiet = QuietHours(*parse_quiet_hours(settings.quiet_hours))
    budget = None
    if settings.contact_budget is not None:
        budget = ContactBudget(*parse_budget(settings.contact_budget))
    config = EngineConfig(
        allowed_lateness_ms=settings.allowed_lateness_s * 1000,
        trigger_hold_ms=(settings.allowed_lateness_s if hold_s is None else hold_s) * 1000,
        quiet_hours=quiet,
        contact_budget=budget,
        holdout=settings.holdout_share,
        holdout_salt=settings.holdout_salt,
        default_timezone=settings.default_timezone,
        offer_secret=settings.offer_code_secret.get_secret_value(),
        late_policy=settings.late_policy,
        dedupe_horizon_ms=settings.dedupe_horizon_s * 1000,
        regular_from_purchases=settings.regular_from_purchases,
        loyal_from_purchases=settings.loyal_from_purchases,
        churn=None if settings.churn_params is None else read_params_file(settings.churn_params),
    )
    return Engine(load_definitions(settings.definitions), config=config)
