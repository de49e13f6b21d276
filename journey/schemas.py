"""The published contract in schemas/: JSON Schemas of the records and the AsyncAPI document."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from journey.asyncapi import asyncapi_document
from journey.contracts import (
    SCHEMA_VERSION,
    DeadLetter,
    StageChanged,
    Touchpoint,
    TriggerAudited,
    TriggerEmitted,
)
from journey.settings import Settings
from journey.topics import Topics

#: Where the generated files live in a source checkout.
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
ASYNCAPI_FILE = "asyncapi.yaml"
ID_PREFIX = "urn:journey:schema:"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True, slots=True)
class Record:
    """A published record: its model, its file slug and which side of the model it shows."""

    slug: str
    model: type[BaseModel]
    # Touchpoints are validated on the way in; the others are what the worker writes out,
    # where every field is present (None included), so they are all required.
    mode: Literal["validation", "serialization"]

    @property
    def file_name(self) -> str:
        return f"{self.slug}.v{SCHEMA_VERSION}.schema.json"


RECORDS: tuple[Record, ...] = (
    Record("touchpoint", Touchpoint, "validation"),
    Record("stage-changed", StageChanged, "serialization"),
    Record("trigger-emitted", TriggerEmitted, "serialization"),
    Record("trigger-audited", TriggerAudited, "serialization"),
    Record("dead-letter", DeadLetter, "serialization"),
)


def schema_of(record: Record) -> dict[str, Any]:
    """The JSON Schema of one record, with its $id and dialect."""
    schema = record.model.model_json_schema(mode=record.mode)
    schema["$id"] = f"{ID_PREFIX}{record.slug}:v{SCHEMA_VERSION}"
    schema["$schema"] = DIALECT
    schema.setdefault("title", record.model.__name__)
    return schema


def render_all(directory: Path = SCHEMA_DIR) -> dict[Path, str]:
    """Every generated file's path under directory and its exact text."""
    files = {directory / r.file_name: _dump_json(schema_of(r)) for r in RECORDS}
    defaults = _default_settings()
    document = asyncapi_document(
        Topics.for_settings(defaults),
        bootstrap=defaults.kafka_bootstrap,
        payload_files={r.model: r.file_name for r in RECORDS},
    )
    files[directory / ASYNCAPI_FILE] = _dump_yaml(document)
    return files


def drift(directory: Path = SCHEMA_DIR) -> list[str]:
    """What differs between the files on disk and what the models generate; empty if none."""
    wanted = render_all(directory)
    problems = [
        f"{path}: {'missing' if not path.exists() else 'out of date'}"
        for path, text in wanted.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    problems += [
        f"{path}: not generated from any model (remove it)"
        for path in sorted(directory.glob("*.schema.json"))
        if path not in wanted
    ]
    return problems


def write_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write the generated files that differ; returns the ones written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for path, text in render_all(directory).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "schemas", help="generate the JSON Schemas and AsyncAPI document (or --check them)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if any file has drifted")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="output directory")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The `journey schemas` command. Settings are unused: the contract uses the defaults."""
    directory: Path = args.dir
    if args.check:
        problems = drift(directory)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("journey: schemas have drifted; run `journey schemas`", file=sys.stderr)
        return 1 if problems else 0
    for path in write_all(directory):
        print(f"wrote {path}")
    return 0


def _default_settings() -> Settings:
    # Defaults only: the published contract must not change with the environment.
    return Settings.model_construct()


def _dump_json(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks so descriptions stay readable."""


def _str_presenter(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_presenter)


def _dump_yaml(doc: dict[str, Any]) -> str:
    header = "# Generated by `journey schemas` from journey/topics.py and journey/contracts.py.\n"
    body = yaml.dump(
        doc, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=100,
        default_flow_style=False,
    )
    return header + body
