"""Setting values that are more than a type: the advertised URL, quiet hours and the
contact budget, each parsed once with a one-line error naming the expected form."""

from __future__ import annotations

from datetime import time
from urllib.parse import urlsplit

#: Bind hosts that mean "every interface": they name no machine another worker can reach.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


def check_advertised_url(text: str) -> str:
    """An advertised URL as Faust's router needs it: http://host:port and nothing more (the
    router keeps the request's scheme and path and swaps only the host and port)."""
    url = urlsplit(text.strip())
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme != "http" or not url.hostname or port is None or url.path not in ("", "/") \
            or url.query or url.fragment or url.username:
        raise ValueError(f"{text!r} is not http://HOST:PORT, e.g. http://journey-1:6066")
    if url.hostname in WILDCARD_HOSTS:
        raise ValueError(f"{text!r} names no machine: advertise a host name or address "
                         "other workers can reach")
    return f"http://{url_host(url.hostname)}:{port}"


def url_host(host: str) -> str:
    """An IPv6 address in brackets, as a URL needs it."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def parse_quiet_hours(text: str) -> tuple[time, time]:
    """'21:00-08:00' -> (21:00, 08:00)."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM, e.g. 21:00-08:00") from None
    return start, end


def parse_budget(text: str) -> tuple[int, int]:
    """'3/7d' -> (3, window in ms)."""
    from journey.engine.duration import parse_duration_ms

    count, _, window = text.partition("/")
    try:
        n = int(count)
        window_ms = parse_duration_ms(window.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not N/DURATION, e.g. 3/7d") from None
    if n < 1 or window_ms <= 0:
        raise ValueError(f"{text!r}: the count and the window must be positive")
    return n, window_ms
