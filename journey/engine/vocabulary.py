"""The built-in touchpoint vocabulary (DOMAIN.md section 1), grouped by category."""

from __future__ import annotations

CATEGORIES: dict[str, tuple[str, ...]] = {
    "acquisition": (
        "ad_impression", "ad_click", "banner_view", "content_view", "site_visit",
        "store_visit", "inbound_call", "cold_call",
    ),
    "lead_capture": (
        "lead_magnet_download", "signup", "newsletter_subscribe", "form_fill",
        "appointment_booked", "no_show", "showed_up",
    ),
    "nurture": (
        "email_sent", "email_opened", "email_clicked", "email_deleted_unread",
        "email_marked_spam", "sms_sent", "messenger_message", "webinar_attended",
        "minibook_downloaded", "paid_link_clicked", "property_viewing", "consultation",
        "live_event_attended", "survey_answered",
    ),
    "commerce": (
        "offer_sent", "contract_signed", "invoice_issued", "payment", "purchase", "refund",
        "shipment_received", "first_use", "loyalty_joined",
    ),
    "service": (
        "support_ticket", "complaint", "complaint_response", "incident", "feedback",
    ),
    "advocacy": (
        "review", "referral", "repost", "contest_entry", "coupon_shared",
    ),
    "consent": ("opt_out", "opt_in"),
    # handled by the pipeline, not the engine: the customer's state is erased (GDPR art. 17)
    "privacy": ("erasure_requested",),
}

#: The event that erases a customer (journey/pipeline/processor.py).
ERASURE_REQUESTED = "erasure_requested"

#: Every built-in event type.
BUILTIN_TYPES: frozenset[str] = frozenset(t for ts in CATEGORIES.values() for t in ts)


def category_of(event_type: str) -> str:
    """The category of a built-in type, or "custom" for a deployment's own."""
    for category, types in CATEGORIES.items():
        if event_type in types:
            return category
    return "custom"
