"""The one frozen settings object, read from JOURNEY_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    def redacted(self) -> dict[str, object]:
        """The settings as a dict safe to log: secrets stay masked."""
        return self.model_dump(mode="json")
