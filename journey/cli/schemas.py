"""`journey schemas`: write what is generated from the models (the JSON Schemas, the AsyncAPI
and OpenAPI documents, the settings table of docs/configuration.md), or check them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from journey.contract.schemas import SCHEMA_DIR, drift, write_all
from journey.pipeline.settings import Settings
from journey.pipeline.settings_text import (
    CONFIGURATION_DOC,
    configuration_drift,
    write_configuration,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schemas", help="generate the JSON Schemas, the AsyncAPI and OpenAPI documents and "
        "the settings table of docs/configuration.md (or --check them)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if any file has drifted")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help="output directory")
    parser.add_argument("--configuration-doc", type=Path, default=CONFIGURATION_DOC,
                        help="the page holding the settings table between its markers")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The `journey schemas` command. Settings are unused: the contract uses the defaults."""
    directory: Path = args.dir
    if args.check:
        problems = drift(directory) + configuration_drift(args.configuration_doc)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("journey: schemas have drifted; run `journey schemas`", file=sys.stderr)
        return 1 if problems else 0
    try:
        written = write_all(directory) + write_configuration(args.configuration_doc)
    except (OSError, ValueError) as exc:
        print(f"journey schemas: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0
