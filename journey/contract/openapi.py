"""The OpenAPI 3.1 document of the worker's web API (journey/stream/web.py), built from the
answer models in journey/contract/api.py."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from journey.contract.api import (
    CustomerProfile,
    ErasureAccepted,
    ErrorBody,
    Health,
    JourneyList,
    JourneyView,
)
from journey.contract.records import SCHEMA_VERSION

_MODELS: tuple[type[BaseModel], ...] = (
    CustomerProfile, ErasureAccepted, ErrorBody, Health, JourneyList, JourneyView)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _answer(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(model)}}}


_ERRORS = {
    "401": _answer(ErrorBody, "No or a wrong bearer token (when JOURNEY_WEB_TOKEN or "
                   "JOURNEY_WEB_READ_TOKEN is set)."),
    "413": _answer(ErrorBody, "A request body over 1 KiB; no path takes a body."),
}
_RATE_LIMITED = {
    **_answer(ErrorBody, "More erasures than JOURNEY_WEB_ERASURES_PER_MINUTE this minute."),
    "headers": {"Retry-After": {
        "description": "Whole seconds until this worker takes the next erasure.",
        "schema": {"type": "integer", "minimum": 1}}},
}
_CUSTOMER_ID = {
    "name": "customer_id", "in": "path", "required": True,
    "description": "The platform's id of the person; 1-128 characters, no edge whitespace.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128,
               "pattern": r"^\S(.*\S)?$"},
}
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]


def openapi_document() -> dict[str, Any]:
    _, defs = models_json_schema([(m, "serialization") for m in _MODELS],
                                 ref_template="#/components/schemas/{model}")
    probe = {"200": _answer(Health, "It holds."),
             "503": _answer(Health, "It does not hold; reason says why.")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "journey worker web API",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "Every worker answers every path. A customer lookup is routed to the worker "
                "that owns the customer's partition; journeys gather stage populations from "
                "every worker of the group. Every path but /health and /ready needs "
                "'Authorization: Bearer <token>' when a token is set: the read token "
                "(JOURNEY_WEB_READ_TOKEN) reads, the erase token (JOURNEY_WEB_TOKEN) reads "
                "and erases. Erasures are limited to JOURNEY_WEB_ERASURES_PER_MINUTE a "
                "minute per worker."),
        },
        "servers": [{"url": "http://127.0.0.1:6066"}],
        "paths": {
            "/customers/{customer_id}": {
                "parameters": [_CUSTOMER_ID],
                "get": {
                    "summary": "Where the customer is in every journey, and why.",
                    "operationId": "getCustomer",
                    "security": _SECURED,
                    "responses": {
                        "200": _answer(CustomerProfile, "The customer's profile."),
                        "400": _answer(ErrorBody, "Not a customer id."),
                        "404": _answer(ErrorBody, "No customer with this id (or erased)."),
                        "503": _answer(ErrorBody, "The owner is not known or did not answer."),
                        **_ERRORS,
                    },
                },
                "delete": {
                    "summary": "Erase the customer (GDPR art. 17); needs the erase token.",
                    "operationId": "eraseCustomer",
                    "security": _SECURED,
                    "responses": {
                        "202": _answer(ErasureAccepted,
                                       "The erasure request is on the touchpoints topic."),
                        "400": _answer(ErrorBody, "Not a customer id."),
                        "403": _answer(ErrorBody, "JOURNEY_WEB_TOKEN is not set, or the "
                                       "token given is the read token."),
                        "429": _RATE_LIMITED,
                        **_ERRORS,
                    },
                },
            },
            "/journeys": {"get": {
                "summary": "Every journey with its live stage populations.",
                "operationId": "listJourneys", "security": _SECURED,
                "responses": {"200": _answer(JourneyList, "The journeys."), **_ERRORS},
            }},
            "/journeys/{name}": {"get": {
                "summary": "One journey with its live stage populations.",
                "operationId": "getJourney", "security": _SECURED,
                "parameters": [{"name": "name", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _answer(JourneyView, "The journey."),
                              "404": _answer(ErrorBody, "No journey by that name runs."),
                              **_ERRORS},
            }},
            "/health": {"get": {
                "summary": ("Liveness: 503 only when the worker is stuck (its event loop or its "
                            "processing stopped); an absent broker does not fail it."),
                "operationId": "health", "security": [], "responses": probe,
            }},
            "/ready": {"get": {
                "summary": ("Readiness: no rebalance or recovery under way, the broker answering, "
                            "partitions assigned."),
                "operationId": "ready", "security": [], "responses": probe,
            }},
            "/openapi.json": {"get": {
                "summary": "This document, as the worker serves it.",
                "operationId": "openapi", "security": _SECURED,
                "responses": {"200": {"description": "The OpenAPI document.",
                                      "content": {"application/json": {
                                          "schema": {"type": "object"}}}},
                              **_ERRORS},
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics (text exposition format).",
                "operationId": "metrics", "security": _SECURED,
                "responses": {"200": {"description": "Metrics.",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              **_ERRORS},
            }},
        },
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
