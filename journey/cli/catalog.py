"""`journey presets` and `journey vocabulary`: what a deployment can run and what it accepts."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from journey.engine.definitions import (
    DefinitionError,
    JourneyDefinition,
    load_definitions,
    load_preset,
    preset_names,
)
from journey.engine.vocabulary import BUILTIN_TYPES, CATEGORIES
from journey.pipeline.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    presets = subparsers.add_parser(
        "presets", help="list the journey presets: stages, rules, exits and event types"
    )
    presets.add_argument("name", nargs="?", help="show one preset only")
    presets.add_argument("--write", type=Path, metavar="FILE",
                         help="copy the named preset's YAML to FILE, to start a candidate for "
                         "`journey diff --base NAME --candidate FILE`")
    presets.set_defaults(handler=run_presets)

    vocabulary = subparsers.add_parser(
        "vocabulary", help="list the accepted event types by category"
    )
    vocabulary.set_defaults(handler=run_vocabulary)


def describe(d: JourneyDefinition) -> list[str]:
    """A definition in a few lines: title, source, stages, rules, exits and event types."""
    own = sorted(d.event_types() - BUILTIN_TYPES)
    lines = [f"{d.name}: {d.title}" if d.title else d.name]
    if d.source:
        lines.append(f"  source: {_first_sentence(d.source)}")
    order = "in order" if d.in_order else "stages may be skipped"
    lines.append(f"  stages ({order}): {' -> '.join(s.name for s in d.stages)}")
    if d.rules:
        lines.append(f"  rules: {', '.join(r.name for r in d.rules)}")
    if d.exits:
        lines.append(f"  exits: {', '.join(x.name for x in d.exits)}")
    lines.append(f"  event types: {', '.join(sorted(d.event_types())) or '(any)'}")
    if own:
        lines.append(f"  its own types (accepted when it is loaded): {', '.join(own)}")
    return lines


def _first_sentence(text: str) -> str:
    head = " ".join(text.split())
    return head if len(head) <= 96 else head[:95] + "…"


def run_presets(args: argparse.Namespace, settings: Settings) -> int:
    if args.write is not None:
        return _write_preset(args.name, args.write)
    names = preset_names() if args.name is None else [args.name]
    try:
        loaded = [load_preset(n) for n in names]
    except DefinitionError as exc:
        print(f"journey presets: {exc}", file=sys.stderr)
        return 2
    for i, d in enumerate(loaded):
        if i:
            print()
        print("\n".join(describe(d)))
    print("\nrun one or more: JOURNEY_DEFINITIONS=name[,name|path.yaml] journey worker",
          file=sys.stderr)
    return 0


def _write_preset(name: str | None, path: Path) -> int:
    """The preset's own YAML, comments and all, in a new file."""
    if name is None:
        print("journey presets: --write needs a preset name", file=sys.stderr)
        return 2
    try:
        load_preset(name)
    except DefinitionError as exc:
        print(f"journey presets: {exc}", file=sys.stderr)
        return 2
    text = resources.files("journey.presets").joinpath(f"{name}.yaml").read_text("utf-8")
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        print(f"journey presets: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote preset {name} to {path}; edit it, then: journey diff --input FILE "
          f"--base {name} --candidate {path}")
    return 0


def run_vocabulary(args: argparse.Namespace, settings: Settings) -> int:
    for category, types in CATEGORIES.items():
        print(f"{category}: {', '.join(types)}")
    try:
        definitions = load_definitions(settings.definitions)
    except DefinitionError as exc:
        print(f"journey vocabulary: {exc}", file=sys.stderr)
        return 2
    for d in definitions:
        own = sorted(set(d.custom_types) - BUILTIN_TYPES)
        if own:
            print(f"custom (journey {d.name}): {', '.join(own)}")
    extra = sorted(set(settings.extra_event_types) - BUILTIN_TYPES)
    if extra:
        print(f"custom (JOURNEY_EXTRA_EVENT_TYPES): {', '.join(extra)}")
    if settings.accept_unknown_types:
        print("any other snake_case type is accepted too (JOURNEY_ACCEPT_UNKNOWN_TYPES)")
    return 0
