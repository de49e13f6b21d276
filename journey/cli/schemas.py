"""`journey schemas`: write the published JSON Schemas and AsyncAPI document, or check them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from journey.contract.schemas import SCHEMA_DIR, drift, write_all
from journey.pipeline.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
