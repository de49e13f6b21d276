"""The one frozen settings object, read from JOURNEY_* environment variables."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from journey.contract.decode import IngestPolicy
from journey.contract.records import EventType
from journey.contract.topics import DEFAULT_BOOTSTRAP, Topics
from journey.pipeline.setting_values import (
    WILDCARD_HOSTS,
    check_advertised_url,
    parse_budget,
    parse_quiet_hours,
    url_host,
)


class Settings(BaseSettings):
    """Every knob of a deployment. Built once in the entrypoint and passed down; never global."""

    # hide_input_in_errors: a cross-field error would otherwise print every input, secrets too.
    model_config = SettingsConfigDict(
        env_prefix="JOURNEY_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        DEFAULT_BOOTSTRAP, description="Comma-separated host:port list of Kafka brokers."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        "PLAINTEXT", description="How every client talks to the brokers: TLS (SSL), SASL "
        "over TLS, SASL without TLS, or neither.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism of the user and password.",
    )
    kafka_username: str | None = Field(None, description="SASL user (PLAIN or SCRAM).")
    kafka_password: SecretStr | None = Field(None, description="SASL password; keep it secret.")
    kafka_ssl_cafile: Path | None = Field(
        None, description="PEM file of the CA(s) that signed the brokers' certificates; "
        "default: the system's trusted CAs.",
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="PEM client certificate, for brokers that require mutual TLS.",
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="PEM private key of the client certificate.",
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="Password of an encrypted private key; keep it secret.",
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="Check that the broker's certificate names the host connected to.",
    )

    # --- Application -------------------------------------------------------------------
    app_id: str = Field("journey", description="Faust app id: consumer group and table prefix.")
    topic_prefix: str = Field(
        "", description="Prefix for every topic name, to run several deployments on one cluster."
    )
    partitions: int = Field(
        4, ge=1, le=1024, description="Partitions of every journey topic; must match "
        "existing topics (the worker refuses to run otherwise).",
    )
    replication_factor: int = Field(
        1, ge=1, le=7, description="Replication factor of the topics journey creates; above 1 "
        "in production (the guarantee relies on the broker keeping what it confirmed).",
    )
    dead_letter_retention_days: float = Field(
        14.0, gt=0, le=3650,
        description="How long the dead-letter topic keeps a record: dead letters hold the "
        "original bytes, personal data included. Set on the topic when it is created and "
        "on an existing one by `journey topics --create` and the worker's start.",
    )
    events_purge_interval_s: float = Field(
        30.0, ge=0, le=86_400,
        description="How often a worker deletes the records of the internal events topic "
        "(touchpoints re-keyed by customer, their bytes included) that its group has "
        "committed, as Kafka Streams does with its repartition topics; 0: never (then the "
        "topic's retention removes them).",
    )
    dead_letter_erasure_lag_ms: int = Field(
        86_400_000, ge=1000, le=3650 * 86_400_000,
        description="How long a dead letter an erasure tombstoned may stay on the broker: "
        "the dead-letter topic's max.compaction.lag.ms (it is compacted as well as "
        "time-limited). The broker rolls and compacts on the next write after this; without "
        "one, the retention above removes it.",
    )
    store: str = Field(
        "rocksdb://", description="Faust table store: rocksdb:// (production: a restart reads "
        "only the changelog tail) or memory:// (tests, small runs: a restart replays it all).",
    )
    standby_replicas: int = Field(
        0, ge=0, le=7,
        description="Standby copies of each state partition kept warm on other workers, so "
        "a partition that moves resumes without replaying its changelog.",
    )
    producer_compression: Literal["zstd", "lz4", "gzip", "none"] = Field(
        "zstd", description="Codec of every batch the worker's transactional producers write "
        "(states to the changelog, outputs). zstd, the default, keeps the changelog about a "
        "third of its uncompressed size, which a cold restore reads back; lz4 costs less CPU "
        "and saves less; none sends JSON as it is. Consumers of the output topics need the "
        "codec too (Java clients have them; kafka-python needs zstandard or lz4).",
    )
    data_dir: Path = Field(Path(".local/journey-data"), description="Faust state directory.")
    web_host: str = Field(
        "127.0.0.1", description="Interface the web API binds to; loopback by default, "
        "0.0.0.0 for every interface.",
    )
    web_port: int = Field(6066, ge=1, le=65535, description="Port of the web API and /metrics.")
    web_advertised_url: str | None = Field(
        None, description="URL other workers reach this one at (lookups are routed to the "
        "customer's owner by it), e.g. http://journey-1:6066; default: the bind host and "
        "port, or this machine's hostname when the bind host is a wildcard.",
    )
    web_token: SecretStr | None = Field(
        None, description="Erase token: a bearer token that reads every web path but /health "
        "and /ready and may also erase (DELETE /customers/{id}, which is refused while it is "
        "unset); a secret. Unset with no read token either: reads are open.",
    )
    web_read_token: SecretStr | None = Field(
        None, description="Read token: a bearer token for lookups, journeys, /metrics and "
        "/openapi.json, refused (403) on erasure; a secret, for support, dashboards and "
        "Prometheus. Must differ from JOURNEY_WEB_TOKEN.",
    )
    web_erasures_per_minute: int = Field(
        60, ge=1, le=100_000,
        description="Erasures over HTTP each worker accepts a minute (bursts up to this many, "
        "then one every 60/N s); more answer 429 with Retry-After. Bulk erasures belong on "
        "the touchpoints topic (erasure_requested events), which is not limited.",
    )
    health_broker_s: float = Field(
        30.0, gt=0, description="/ready fails when the broker has not answered for this long "
        "(/health does not: a restart would not bring the broker back).",
    )
    health_stall_s: float = Field(
        300.0, gt=0, description="/health fails when one batch has been processed for this "
        "long while the broker answered: the worker is stuck and a restart may help.",
    )
    shutdown_timeout_s: float = Field(
        15.0, gt=0, description="SIGTERM or SIGINT stops the worker within this many seconds.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Level of every logger, in any case; customer ids are never "
        "logged at INFO.",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object per line (time, level, logger, "
        "message, worker, exception) for every library's log lines.",
    )

    session_timeout_s: float = Field(
        30.0, ge=6.0, le=300.0,
        description="Consumer group session timeout: how soon a dead worker's partitions move.",
    )

    # --- Batching ----------------------------------------------------------------------
    # The agents read every record Faust has buffered, up to batch_max_events, as one batch
    # (journey/stream/agents.py, drain); they never wait for a batch to fill. (The former
    # JOURNEY_BATCH_WITHIN_MS, a wait nothing used, is gone: setting it now gives a warning.)
    batch_max_events: int = Field(
        2000, ge=1, le=100_000,
        description="Most input records handled as one batch (every record Faust has "
        "buffered for an agent, up to this many; no wait for more).",
    )

    flush_interval_ms: int = Field(
        100, ge=10, le=60_000,
        description="How often changed customer states are written to the changelog and the "
        "input they came from is acknowledged (write-behind), in milliseconds. Outputs "
        "leave in the same transaction, so this bounds how long a read_committed reader "
        "waits for them (Kafka Streams' exactly-once default is also 100 ms).",
    )
    flush_when_caught_up: bool = Field(
        True,
        description="Flush as soon as the worker has caught up with its input (a batch left "
        "nothing waiting) instead of waiting for the flush interval: outputs leave within "
        "a transaction's time when the worker keeps up, at the cost of more, smaller "
        "transactions. Under a backlog flushes still come at the interval.",
    )
    flush_max_held: int = Field(
        20_000, ge=1, le=1_000_000,
        description="Flush sooner when this many input records wait for acknowledgement.",
    )
    rebuild_slice_customers: int = Field(
        5000, ge=1,
        description="Stored states read between yields to the event loop while a newly "
        "assigned partition's due index is rebuilt (keeps heartbeats going).",
    )
    bulk_restore_min_records: int = Field(
        5000, ge=1,
        description="A newly assigned partition whose changelog is at least this many "
        "records ahead of the local store is read into it in bulk before Faust's recovery "
        "reads the rest (journey/stream/restore.py); a shorter tail is left to Faust.",
    )
    due_slice_customers: int = Field(
        2000, ge=1,
        description="Due detections applied between yields to the event loop when a tick "
        "makes many customers due at once (the outputs are the same, in the same order).",
    )
    state_cache_customers: int = Field(
        200_000, ge=0,
        description="Unchanged customer states kept decoded in memory beyond those changed.",
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
        3600, ge=0, description="How far behind a customer's newest event one may arrive."
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
    # --- Trigger policy ------------------------------------------------------------------
    trigger_hold_s: int | None = Field(
        None, ge=0, description="Hold marketing triggers this long so a late opt-out is "
        "honoured; default: the allowed lateness. Journeys may override.",
    )
    quiet_hours: str | None = Field(
        "21:00-08:00", description="Local quiet hours for marketing (HH:MM-HH:MM); empty: none."
    )
    contact_budget: str | None = Field(
        "3/7d", description="At most N marketing triggers per customer per window (N/7d); "
        "empty: none."
    )
    holdout_share: float = Field(
        0.0, ge=0.0, lt=1.0, description="Share of customers held out as a control group, 0-1.")
    holdout_salt: str = Field(
        "journey", description="Salt of the stable holdout hash; choose one per deployment, "
        "or populations with the same ids share their held-out customers.")
    default_timezone: str = Field("UTC", description="IANA zone of events that carry none.")
    offer_code_secret: SecretStr = Field(
        SecretStr(""), description="Key of the personal offer codes; keep it secret (the "
        "worker warns when it is empty).",
    )
    regular_from_purchases: int = Field(
        3, ge=1, description="Lifecycle status regular from this many purchases (seed 001).")
    loyal_from_purchases: int = Field(10, ge=1, description="Loyal from this many purchases.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("quiet_hours", "contact_budget", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours_format(cls, value: str | None) -> str | None:
        if value is not None:
            parse_quiet_hours(value)
        return value

    @field_validator("contact_budget")
    @classmethod
    def _budget_format(cls, value: str | None) -> str | None:
        if value is not None:
            parse_budget(value)
        return value

    @field_validator("web_token", "web_read_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        # An empty variable (a compose file's ${TOKEN:-}) means no token, not the empty one.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("web_advertised_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("web_advertised_url")
    @classmethod
    def _advertised_url_format(cls, value: str | None) -> str | None:
        return None if value is None else check_advertised_url(value)

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value

    @field_validator("extra_event_types", "definitions", mode="before")
    @classmethod
    def _comma_or_json_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @model_validator(mode="after")
    def _tokens_differ(self) -> Settings:
        if self.web_token is not None and self.web_read_token is not None \
                and self.web_token.get_secret_value() == self.web_read_token.get_secret_value():
            raise ValueError("JOURNEY_WEB_READ_TOKEN equals JOURNEY_WEB_TOKEN: a read token "
                             "that erases is no read token; give it a value of its own")
        return self

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> Settings:
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_") and (self.kafka_username is None
                                            or self.kafka_password is None):
            raise ValueError(
                f"JOURNEY_KAFKA_SECURITY_PROTOCOL={protocol} needs JOURNEY_KAFKA_USERNAME "
                "and JOURNEY_KAFKA_PASSWORD"
            )
        tls_files = [self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile]
        if not protocol.endswith("SSL") and any(f is not None for f in tls_files):
            raise ValueError(
                f"JOURNEY_KAFKA_SSL_* files are set but JOURNEY_KAFKA_SECURITY_PROTOCOL="
                f"{protocol} does not use TLS; use SSL or SASL_SSL"
            )
        if not protocol.startswith("SASL_") and self.kafka_username is not None:
            raise ValueError(
                f"JOURNEY_KAFKA_USERNAME is set but JOURNEY_KAFKA_SECURITY_PROTOCOL={protocol} "
                "does not authenticate with SASL; use SASL_SSL or SASL_PLAINTEXT"
            )
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            raise ValueError("JOURNEY_KAFKA_SSL_KEYFILE needs JOURNEY_KAFKA_SSL_CERTFILE")
        return self

    def advertised_url(self, hostname: Callable[[], str] = socket.gethostname) -> str:
        """The URL this worker gives the group for routing lookups to it. A wildcard bind
        host names no machine, and every worker advertising it would take every customer for
        its own (a lookup of another worker's customer answers 404), so it falls back to
        this machine's hostname."""
        if self.web_advertised_url is not None:
            return self.web_advertised_url
        host = self.web_host.strip()
        if host in WILDCARD_HOSTS:
            host = hostname()
        return f"http://{url_host(host)}:{self.web_port}"

    def topics(self) -> Topics:
        """This deployment's topics: names with its prefix, its partition count."""
        return Topics.named(
            prefix=self.topic_prefix, partitions=self.partitions, app_id=self.app_id,
            dead_letter_retention_ms=round(self.dead_letter_retention_days * 86_400_000),
            dead_letter_erasure_lag_ms=self.dead_letter_erasure_lag_ms,
        )

    def compression_type(self) -> str | None:
        """`producer_compression` as Kafka clients name it (None: uncompressed)."""
        return None if self.producer_compression == "none" else self.producer_compression

    def ingest_policy(self) -> IngestPolicy:
        """The validation policy these settings ask for."""
        return IngestPolicy(
            max_payload_bytes=self.max_payload_bytes,
            max_future_skew_ms=self.max_future_skew_s * 1000,
            accept_unknown_types=self.accept_unknown_types,
            extra_types=frozenset(self.extra_event_types) | self.definition_types(),
        )

    def definition_types(self) -> frozenset[str]:
        """The event types beyond the vocabulary that the configured journey definitions name
        (their custom_types): loading a definition accepts the types it uses. A definition
        that does not load adds none; building the engine reports it."""
        from journey.engine.definitions import DefinitionError, load_definitions
        from journey.engine.vocabulary import BUILTIN_TYPES

        try:
            return frozenset(t for d in load_definitions(self.definitions)
                             for t in d.event_types() if t not in BUILTIN_TYPES)
        except DefinitionError:
            return frozenset()

    def redacted(self) -> dict[str, object]:
        """The settings as a dict safe to log: secrets stay masked."""
        return self.model_dump(mode="json")
