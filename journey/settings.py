"""The one frozen settings object, read from JOURNEY_* environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from journey.contracts import EventType


class Settings(BaseSettings):
    """Every knob of a deployment. Built once in the entrypoint and passed down; never global."""

    model_config = SettingsConfigDict(env_prefix="JOURNEY_", frozen=True, extra="ignore")

    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:19092", description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = (
        "PLAINTEXT"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None

    # --- Application -------------------------------------------------------------------
    app_id: str = Field("journey", description="Faust app id: consumer group and table prefix.")
    topic_prefix: str = Field(
        "", description="Prefix for every topic name, to run several deployments on one cluster."
    )
    partitions: int = Field(4, ge=1, le=1024, description="Partitions of every journey topic.")
    replication_factor: int = Field(1, ge=1, le=7)
    store: str = Field("memory://", description="Faust table store: memory:// or rocksdb://.")
    data_dir: Path = Field(Path(".local/journey-data"), description="Faust state directory.")
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535, description="Port of /metrics and /health.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- Batching ----------------------------------------------------------------------
    batch_max_events: int = Field(
        2000, ge=1, le=100_000, description="Most events the journey agent takes per batch."
    )
    batch_within_ms: int = Field(
        50, ge=1, le=60_000, description="Longest wait for a batch to fill, in milliseconds."
    )

    # --- Ingestion ---------------------------------------------------------------------
    max_payload_bytes: int = Field(
        65536, ge=1, description="Largest touchpoint accepted, in bytes; larger are dead-lettered."
    )
    max_future_skew_s: int = Field(
        300, ge=0, description="How far ahead of the worker's clock occurred_at may be, in seconds."
    )
    accept_unknown_types: bool = Field(
        False, description="Accept event types outside the vocabulary instead of rejecting them."
    )
    # NoDecode: pydantic-settings would otherwise insist on JSON; the validator takes both forms.
    extra_event_types: Annotated[list[EventType], NoDecode] = Field(
        default_factory=list, description="This deployment's own event types: a,b or a JSON list."
    )
    dedupe_horizon_s: int = Field(
        7 * 24 * 3600, ge=0, description="How long an event_id is remembered, in seconds."
    )

    # --- Engine ------------------------------------------------------------------------
    definitions: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["touchpoint_journey"],
        description="Journey definitions to run: preset names or YAML paths, a,b or a JSON list.",
    )
    allowed_lateness_s: int = Field(
        24 * 3600, ge=0, description="How far behind a customer's newest event one may arrive."
    )
    late_policy: Literal["count_only", "drop"] = Field(
        "count_only", description="What a later event does: update counters only, or nothing."
    )
    tick_interval_ms: int = Field(
        5000, ge=10, description="How often a worker appends ticks to its partitions."
    )
    churn_params: Path | None = Field(
        None, description="Parameters file from `journey churn fit`; enables churn_risk."
    )
    regular_from_purchases: int = Field(3, ge=1, description="seed 001: regular from 3.")
    loyal_from_purchases: int = Field(10, ge=1, description="Loyal from this many purchases.")

    @field_validator("extra_event_types", "definitions", mode="before")
    @classmethod
    def _comma_or_json_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    def redacted(self) -> dict[str, object]:
        """The settings as a dict safe to log: secrets stay masked."""
        return self.model_dump(mode="json")
