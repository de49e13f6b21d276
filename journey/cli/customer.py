"""`journey customer ID`: a customer's profile from a running worker, in readable form."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from journey.pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "customer", help="show where a customer is in every journey, and why",
        description="Asks a running worker (any one: it routes to the owner) for the "
        "customer's profile. JOURNEY_WEB_READ_TOKEN is sent when set, else "
        "JOURNEY_WEB_TOKEN.",
    )
    parser.add_argument("customer_id")
    parser.add_argument("--url", help="a worker's web address (default: "
                        "http://JOURNEY_WEB_HOST:JOURNEY_WEB_PORT)")
    parser.add_argument("--json", action="store_true", help="print the JSON answer as is")
    parser.set_defaults(handler=_customer)


def _customer(args: argparse.Namespace, settings: Settings) -> int:
    base = args.url or f"http://{settings.web_host}:{settings.web_port}"
    url = f"{base.rstrip('/')}/customers/{urllib.parse.quote(args.customer_id, safe='')}"
    headers = {}
    # The least right that reads: the read token when there is one.
    token = settings.web_read_token or settings.web_token
    if token is not None:
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=15) as response:
            profile = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", exc.reason)
        except ValueError:
            message = exc.reason
        print(f"journey customer: {exc.code}: {message}", file=sys.stderr)
        return 1 if exc.code == 404 else 2
    except (OSError, ValueError) as exc:
        print(f"journey customer: cannot reach a worker at {base} ({exc}); is one running "
              "and JOURNEY_WEB_HOST/JOURNEY_WEB_PORT right?", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(profile, indent=2, ensure_ascii=False))
    else:
        print(render(profile))
    return 0


def render(p: dict[str, Any]) -> str:
    """The profile as text: one section per question a support person asks."""
    lines = [f"customer {p['customer_id']}  (as of {p['as_of']})",
             f"  status       {p['status'] or '-'} since {p['status_since'] or '-'}",
             f"  temperature  {p['temperature']}{'  OPTED OUT' if p['opted_out'] else ''}",
             f"  touches      {p['touches']}  purchases {p['purchases']}  "
             f"spend {p['spend']:g}  late events {p['late_events']}"]
    first = p["first_touch"]
    if first:
        lines.append(f"  first touch  {first['type']} at {first['at']} via "
                     f"{first['channel'] or '-'} / source {first['source'] or '-'} / "
                     f"campaign {first['campaign'] or '-'}")
    lines.append("journeys")
    for j in p["journeys"]:
        days = "-" if j["seconds_in_stage"] is None else f"{j['seconds_in_stage'] / 86400:.1f}d"
        lines.append(f"  {j['journey']:<24} {j['stage'] or '-':<20} for {days:<8} "
                     f"score {j['score']:g}")
    for title, key, line in _LISTS:
        lines.append(title + ("" if p[key] else "  none"))
        lines.extend(f"  {line(item)}" for item in p[key])
    return "\n".join(lines)


#: The profile's lists, in the order shown: title, key, and how one item reads.
_LISTS: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("pending triggers", "pending_triggers",
     lambda t: f"{t['journey']}/{t['rule']} ({t['kind']}, {t['reason']}) released "
               f"{t['release_at']}; held: {', '.join(t['held_because']) or '-'}"),
    ("next deadlines", "next_deadlines", lambda d: f"{d['at']}  {d['fires']} ({d['journey']})"),
    ("last sent", "last_sent", lambda s: f"{s['sent_at']}  {s['journey']}/{s['rule']}"),
    ("recent trigger decisions", "recent_decisions",
     lambda d: f"{d['at']}  {d['journey']}/{d['rule']}: {d['outcome']} ({d['reason']})"),
    ("detections", "detections",
     lambda d: f"{d['kind']} x{d['times']}, last anchored {d['last_anchor']}"),
)
