"""What every accepted event counts: touches, attribution, purchases, engagement, consent.

These do not depend on the order events arrive in, so a late event still updates them.
"""

from __future__ import annotations

import bisect

from journey.engine.events import Event
from journey.engine.state import PURCHASE_HISTORY, CustomerState, Touch, decay
from journey.engine.vocabulary import CATEGORIES

#: Events that count as interacting with content (temperature "hot" needs them regularly).
ENGAGEMENT_TYPES = frozenset(
    {"email_opened", "email_clicked", "content_view", "site_visit", "webinar_attended",
     "minibook_downloaded", "paid_link_clicked", "live_event_attended", "survey_answered",
     "consultation", "messenger_message", "lead_magnet_download"}
)
LEAD_CAPTURE_TYPES = frozenset(CATEGORIES["lead_capture"])
_CONSENT_TYPES = frozenset({"opt_out", "opt_in"})


def remember_id(state: CustomerState, event: Event, horizon_ms: int, max_ids: int) -> None:
    """Keep the event's id for duplicate detection: the newest `max_ids` ids within the
    dedupe horizon of the customer's newest event."""
    ids = state.recent_ids
    ids[event.event_id] = event.at_ms
    horizon = max(state.max_event_ms, event.at_ms) - horizon_ms
    if len(ids) > max_ids:
        keep = sorted(((t, i) for i, t in ids.items() if t >= horizon), reverse=True)
        state.recent_ids = {i: t for t, i in sorted(keep[:max_ids])}
        return
    # Ids arrive (nearly) in time order: forget the oldest from the front, no sort.
    while ids:
        oldest = next(iter(ids))
        if ids[oldest] >= horizon:
            break
        del ids[oldest]


def count(state: CustomerState, event: Event, engagement_half_life_ms: int) -> None:
    """Update the counters, attribution, commerce, engagement and consent for one event."""
    at = event.at_ms
    newest = at >= state.max_event_ms
    state.touches += 1
    state.counts[event.type] = state.counts.get(event.type, 0) + 1
    if state.first_touch is None or at < state.first_touch.at_ms:
        state.first_touch = Touch(at, event.type, event.channel, event.source, event.campaign)
        state.referred = state.referred or event.source == "referral"
    if newest:
        state.max_event_ms = at
        state.last_touch_ms = at
        state.last_channel = event.channel or state.last_channel
        state.timezone = event.timezone or state.timezone
    etype = event.type
    if etype == "purchase":
        count_purchase(state, event)
    elif etype in LEAD_CAPTURE_TYPES:
        state.has_contact = True
        if state.lead_ms is None or at < state.lead_ms:
            state.lead_ms = at
        if etype == "newsletter_subscribe" and not state.opted_out:
            state.subscribed = True
    elif etype == "referral":
        if event.properties.get("rewarded"):
            state.referrals_rewarded += 1
        else:
            state.referrals_unpaid += 1
    elif etype == "complaint":
        if state.open_complaint_ms is None:
            state.open_complaint_ms = at
    elif etype == "complaint_response":
        state.open_complaint_ms = None
    if etype in ENGAGEMENT_TYPES:
        _engage(state, at, engagement_half_life_ms)
    apply_consent(state, event)


def _engage(state: CustomerState, at: int, half_life_ms: int) -> None:
    """One more interaction, kept as a decayed sum at the latest interaction time."""
    if at >= state.engagement_ms:
        state.engagement = decay(state.engagement, state.engagement_ms, at, half_life_ms) + 1.0
        state.engagement_ms = at
    else:
        state.engagement += decay(1.0, at, state.engagement_ms, half_life_ms)


def count_purchase(state: CustomerState, event: Event) -> None:
    """A purchase: counts, spend, first and last purchase time, the recent history."""
    at = event.at_ms
    state.purchases += 1
    state.spend += event.amount or 0.0
    state.has_contact = True
    if state.first_purchase_ms is None or at < state.first_purchase_ms:
        state.first_purchase_ms = at
    if state.last_purchase_ms is None or at > state.last_purchase_ms:
        state.last_purchase_ms = at
    bisect.insort(state.purchase_times, at)
    del state.purchase_times[:-PURCHASE_HISTORY]


def apply_consent(state: CustomerState, event: Event) -> None:
    """An opt-out or opt-in; the latest decision by event time wins, whatever order they
    arrive in. Applied even to events too late for anything else."""
    if event.type not in _CONSENT_TYPES:
        return
    if state.consent_ms is not None and event.at_ms < state.consent_ms:
        return
    state.consent_ms = event.at_ms
    state.opted_out = event.type == "opt_out"
    if state.opted_out:
        state.subscribed = False
