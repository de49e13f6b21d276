"""Who may do what on the web API: the read and erase tokens, and the erasure rate limit."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError

from journey.pipeline.access import RateLimit, Refusal, Tokens
from journey.pipeline.metrics import Metrics
from journey.pipeline.redact import settings_secrets
from journey.pipeline.settings import Settings
from journey.pipeline.settings_text import describe_error, settings_help

ERASE, READ = "erase-token-0123456789", "read-token-0123456789"


def both() -> Tokens:
    return Tokens(erase=SecretStr(ERASE), read=SecretStr(READ))


def test_the_erase_token_may_read_and_erase() -> None:
    tokens = both()
    assert tokens.role(f"Bearer {ERASE}") == "erase"
    assert tokens.may_erase("erase") is None


def test_the_read_token_reads_but_erasing_with_it_is_forbidden() -> None:
    # Given both tokens set
    tokens = both()
    # When the read token is presented
    role = tokens.role(f"bearer  {READ} ")
    # Then it reads, and an erasure with it is a 403 that names the erase token
    assert role == "read"
    refusal = tokens.may_erase("read")
    assert refusal is not None and (refusal.status, refusal.error) == (403, "forbidden")
    assert "JOURNEY_WEB_TOKEN" in refusal.message


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic abc", "Bearer wrong",
                                    f"Bearer {READ}x", f"Token {ERASE}"])
def test_a_missing_or_wrong_token_is_a_401_with_a_bearer_challenge(header: str) -> None:
    refusal = both().role(header)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.error) == (401, "unauthenticated")
    assert refusal.headers == {"WWW-Authenticate": "Bearer"}
    assert ERASE not in refusal.message and READ not in refusal.message


def test_without_tokens_reads_are_open_and_erasure_is_refused() -> None:
    tokens = Tokens(erase=None, read=None)
    assert not tokens.asked
    assert tokens.role("") == "read"
    refusal = tokens.may_erase("read")
    assert refusal is not None and (refusal.status, refusal.error) == (403, "token_required")


def test_with_only_a_read_token_reads_need_it_and_nobody_erases() -> None:
    tokens = Tokens(erase=None, read=SecretStr(READ))
    assert isinstance(tokens.role(""), Refusal)
    assert tokens.role(f"Bearer {READ}") == "read"
    refusal = tokens.may_erase("read")
    assert refusal is not None and refusal.error == "token_required"


def test_the_rate_limit_allows_a_burst_then_one_per_interval() -> None:
    # Given a limit of 3 a minute and a clock the test moves
    now = [100.0]
    limit = RateLimit(3, clock=lambda: now[0])
    # When four erasures come at once
    waits = [limit.take() for _ in range(4)]
    # Then three go ahead and the fourth waits one interval (60/3 s)
    assert waits == [0, 0, 0, 20]
    # When 19 s pass, still refused (1 s left, never 0 while refused)
    now[0] += 19
    assert limit.take() == 1
    # When the interval has passed, one more goes ahead, and only one
    now[0] += 1
    assert [limit.take(), limit.take()] == [0, 20]


def test_a_long_quiet_time_refills_the_burst_but_never_beyond_it() -> None:
    now = [0.0]
    limit = RateLimit(2, clock=lambda: now[0])
    now[0] += 3600
    assert [limit.take() for _ in range(3)] == [0, 0, 30]


def test_a_rate_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimit(0)


def test_the_erasure_counter_starts_every_outcome_at_zero_with_no_customer_label() -> None:
    registry = CollectorRegistry()
    Metrics(registry=registry)
    for outcome in ("accepted", "rate_limited", "forbidden"):
        assert registry.get_sample_value("journey_erasure_requests_total",
                                         {"outcome": outcome}) == 0.0


def test_both_tokens_are_secrets_kept_out_of_dumps_help_and_logs() -> None:
    # Given both tokens set
    settings = Settings(web_token=ERASE, web_read_token=READ)
    # Then neither appears when the settings are dumped or the help is printed
    dumped = str(settings.redacted()) + settings_help()
    assert ERASE not in dumped and READ not in dumped
    # And both are masked in every log line
    assert set(settings_secrets(settings)) >= {ERASE, READ}


def test_a_read_token_equal_to_the_erase_token_is_a_one_line_error() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(web_token=ERASE, web_read_token=ERASE)
    message = describe_error(refused.value)
    assert "JOURNEY_WEB_READ_TOKEN equals JOURNEY_WEB_TOKEN" in message
    assert ERASE not in message and "\n" not in message


def test_an_empty_token_variable_means_no_token() -> None:
    settings = Settings(web_token="", web_read_token=" ")
    assert settings.web_token is None and settings.web_read_token is None


def test_the_erasure_rate_must_be_positive() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(web_erasures_per_minute=0)
    assert describe_error(refused.value).startswith("JOURNEY_WEB_ERASURES_PER_MINUTE=")
