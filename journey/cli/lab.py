"""The lab commands: `journey simulate`, `journey import`, `journey run` and `journey diff`."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from journey.pipeline.settings import Settings

if TYPE_CHECKING:
    from journey.lab.run import RunResult


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = subparsers.add_parser(
        "simulate", help="generate a reproducible population of customers and touchpoints")
    sim.add_argument("--seed", type=int, default=1, help="same seed, same file (default 1)")
    sim.add_argument("--customers", type=int, default=1000)
    sim.add_argument("--days", type=int, default=365, help="length of the period in days")
    sim.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1),
                     help="first day, ISO (default 2025-01-01)")
    sim.add_argument("--out", type=Path, default=Path("simulated.jsonl"), metavar="FILE",
                     help="JSON Lines to write, sorted by event time (default simulated.jsonl)")
    sim.add_argument("--kafka", action="store_true",
                     help="also produce the file to the touchpoints topic")
    sim.add_argument("--rate", type=_positive_float, help="with --kafka: at most N per second")
    sim.add_argument("--no-progress", action="store_true", help="no progress bar")
    sim.set_defaults(handler=_simulate)

    imp = subparsers.add_parser("import", help="turn a public purchase log into touchpoints")
    imp.add_argument("dataset", choices=["cdnow"], help="cdnow: Fader & Hardie's CDNOW log")
    imp.add_argument("file", type=Path,
                     help="CDNOW_master.txt, or the lifetimes wheel that ships it")
    imp.add_argument("--out", type=Path, required=True, metavar="FILE")
    imp.set_defaults(handler=_import)

    run = subparsers.add_parser(
        "run", help="run journeys over a file in-process (no broker) and write a report")
    run.add_argument("--input", type=Path, required=True, metavar="FILE")
    _journey_options(run)
    run.add_argument("--journey", action="append", metavar="NAME",
                     help="preset name or YAML path; repeat for several (default: settings)")
    run.set_defaults(handler=_run)

    rep = subparsers.add_parser(
        "report", help="draw the backtest report from an input file and its output files")
    rep.add_argument("--input", type=Path, required=True, metavar="FILE",
                     help="the touchpoints that were processed")
    rep.add_argument("--outputs", type=Path, required=True, metavar="DIR",
                     help="folder with stage-changes.jsonl, triggers.jsonl, trigger-audit.jsonl")
    rep.add_argument("--journey", action="append", metavar="NAME",
                     help="the journeys that ran (default: settings)")
    _holdout_options(rep, "the share the worker held out (default: settings)")
    rep.add_argument("--churn-params", type=Path, metavar="FILE",
                     help="params from `journey churn fit`, for model LTV and the churn rate")
    rep.add_argument("--margin", type=float, default=0.3)
    _lift_options(rep)
    rep.set_defaults(handler=_report)

    col = subparsers.add_parser(
        "collect", help="read the worker's output topics from the start into JSON Lines files")
    col.add_argument("--out-dir", type=Path, required=True, metavar="DIR")
    col.add_argument("--idle", type=float, default=5.0,
                     help="stop after this many seconds without a new record (default 5)")
    col.add_argument("--timeout", type=float, default=300.0, help="stop after this long")
    col.set_defaults(handler=_collect)

    diff = subparsers.add_parser(
        "diff", help="run two journey versions over the same input and compare their triggers")
    diff.add_argument("--input", type=Path, required=True, metavar="FILE")
    diff.add_argument("--base", action="append", required=True, metavar="NAME",
                      help="the current version: preset name or YAML path; repeatable")
    diff.add_argument("--candidate", action="append", required=True, metavar="NAME",
                      help="the new version: preset name or YAML path; repeatable")
    _journey_options(diff)
    diff.set_defaults(handler=_diff)


def _journey_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", type=Path, default=Path("journey-run"), metavar="DIR",
                        help="where outputs and report.html go (default journey-run)")
    parser.add_argument("--until", help="advance event time to this ISO instant at the end "
                        "(default: the last event's time)")
    _holdout_options(parser, "share of customers held out, at least 0 and below 1, to "
                     "measure lift")
    parser.add_argument("--churn-params", type=Path, metavar="FILE",
                        help="params from `journey churn fit`: the engine's dormancy and lost "
                        "detections use them, and the report's model LTV (with a spend model)")
    parser.add_argument("--margin", type=float, default=0.3,
                        help="profit share of revenue for LTV (choice: 0.3)")
    _lift_options(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _holdout_options(parser: argparse.ArgumentParser, share_help: str) -> None:
    parser.add_argument("--holdout", type=_share, metavar="SHARE", help=share_help)
    parser.add_argument("--holdout-salt", metavar="TEXT",
                        help="salt of the stable holdout hash; choose one per deployment, or "
                        "every population with the same ids has the same held-out customers "
                        "(default: settings, JOURNEY_HOLDOUT_SALT)")


def _lift_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window-days", type=_positive_int, default=30,
                        help="a purchase this many days after a customer first became "
                        "eligible for a rule counts as converted (default 30)")
    parser.add_argument("--primary-rule", metavar="RULE",
                        help="the rule named in advance as the one that matters: tested on its "
                        "own at 95%%; the others are adjusted for being read together")


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from journey.lab.simulate import SimulationConfig, event_types, simulate, write_jsonl

    try:
        config = SimulationConfig(seed=args.seed, customers=args.customers, start=args.start,
                                  days=args.days)
    except ValueError as exc:
        return _fail("simulate", str(exc))
    events = simulate(config)
    try:
        count = write_jsonl(events, args.out)
    except OSError as exc:
        return _fail("simulate", f"cannot write {args.out}: {exc.strerror or exc}")
    print(f"wrote {count} touchpoints of {config.customers} customers to {args.out}")
    policy = settings.ingest_policy()
    unaccepted = [] if policy.accept_unknown_types else sorted(
        t for t in event_types(events) if not policy.knows(t))
    if unaccepted and args.kafka:  # the worker would dead-letter them as unknown_event_type
        return _fail("simulate", f"not sent: {_vocabulary_advice(unaccepted)}")
    if unaccepted:
        print(f"journey simulate: note: {_vocabulary_advice(unaccepted)}", file=sys.stderr)
    if not args.kafka:
        return 0
    return feed_file(args.out, settings, rate=args.rate, progress=not args.no_progress)


def _vocabulary_advice(unaccepted: list[str]) -> str:
    """What to set so that a worker accepts every type of a simulated population."""
    from journey.lab.simulate import JOURNEYS

    return (f"the population has event types these settings do not accept "
            f"({', '.join(unaccepted)}), which a worker dead-letters as unknown_event_type; "
            f"set JOURNEY_DEFINITIONS={','.join(JOURNEYS)} (the presets it walks) or add them "
            f"to JOURNEY_EXTRA_EVENT_TYPES")


def feed_file(path: Path, settings: Settings, *, rate: float | None, progress: bool) -> int:
    """Produce every line of a touchpoints file to the touchpoints topic, at most `rate` per
    second, with a progress line; the demo feeds the worker with this."""
    from journey.cli.send import Progress, RateLimiter, _kafka_sink, iter_lines, replay

    sink = _kafka_sink(settings)
    if sink is None:
        return 1
    try:
        now_ms = int(time.time() * 1000)
        lines = iter_lines(path, settings.ingest_policy(), now_ms)
        tally = replay(lines, sink, limiter=RateLimiter(rate),
                       progress=Progress(sys.stderr, enabled=progress))
    finally:
        sink.close()
    print(f"sent {tally.sent} to {settings.topics().touchpoints.name}, failed {tally.failed}")
    return 1 if tally.failed else 0


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from journey.lab.cdnow import CdnowError, import_file

    try:
        purchases, customers = import_file(args.file, args.out)
    except (OSError, CdnowError) as exc:
        return _fail("import", f"{args.file}: {exc}")
    print(f"wrote {purchases} purchases of {customers} customers to {args.out}")
    return 0


def _plotly_missing(command: str) -> bool:
    try:
        import plotly  # noqa: F401
    except ImportError:
        _fail(command, "the report needs plotly: pip install 'journey[lab]'")
        return True
    return False


def _write_report(args: argparse.Namespace, result: RunResult, folder: Path) -> Path:
    """The HTML report and the summary of a run, written into its folder; prints the summary."""
    from journey.lab.analysis import analyse
    from journey.lab.lift import write_units
    from journey.lab.report import render_html, summary_text

    analysis = analyse(result, input_name=args.input.name, margin=args.margin,
                       conversion_window_days=args.window_days, primary_rule=args.primary_rule)
    if args.primary_rule and not any(x.primary for x in analysis.lifts):
        print(f"journey {args.command}: --primary-rule {args.primary_rule}: no rule of that name "
              "held anyone out; every rule is adjusted", file=sys.stderr)
    report, text = folder / "report.html", summary_text(analysis)
    report.write_text(render_html(analysis), encoding="utf-8")
    (folder / "summary.txt").write_text(text, encoding="utf-8")
    if analysis.lift_units:
        write_units(analysis.lift_units, folder / "lift.jsonl")
    print(text, end="")
    return report


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if _plotly_missing("run"):
        return 2
    result = _run_one(args, settings, args.journey, args.out_dir)
    if isinstance(result, int):
        return result
    report = _write_report(args, result, args.out_dir)
    print(f"outputs in {args.out_dir}/ ({', '.join(p.name for p in result.files.values())})")
    print(f"report: {report}")
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from journey.engine.definitions import DefinitionError
    from journey.lab.run import lab_settings, load_outputs

    if _plotly_missing("report"):
        return 2
    if not args.input.is_file() or not args.outputs.is_dir():
        return _fail("report", f"need an input file and an outputs folder: {args.input}, "
                     f"{args.outputs}")
    try:
        chosen = lab_settings(settings, args.journey, args.holdout, args.holdout_salt)
        if args.churn_params is not None:
            chosen = Settings.model_validate(
                {**chosen.model_dump(), "churn_params": args.churn_params})
        result = load_outputs(args.input, chosen, args.outputs)
    except (DefinitionError, ValueError, OSError) as exc:
        return _fail("report", str(exc))
    report = _write_report(args, result, args.outputs)
    print(f"report: {report}")
    return 0


def _collect(args: argparse.Namespace, settings: Settings) -> int:
    """Every record of the output topics, as its JSON value, one file per topic."""
    import time

    from kafka.errors import KafkaError

    from journey.stream.kafka_client import consumer

    topics = settings.topics()
    names = {topics.stage_changes.name: "stage-changes", topics.triggers.name: "triggers",
             topics.trigger_audit.name: "trigger-audit",
             topics.dead_letters.name: "dead-letters"}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    sinks = {name: (args.out_dir / f"{name}.jsonl").open("wb") for name in names.values()}
    counts = dict.fromkeys(names.values(), 0)
    try:
        reader = consumer(settings, *names)
    except KafkaError as exc:
        return _fail("collect", f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}")
    try:
        started = last = time.monotonic()
        while time.monotonic() - last < args.idle and time.monotonic() - started < args.timeout:
            for partition, records in reader.poll(timeout_ms=500).items():
                name = names[partition.topic]
                for record in records:
                    sinks[name].write(record.value.rstrip(b"\n") + b"\n")
                    counts[name] += 1
                    last = time.monotonic()
    finally:
        reader.close()
        for sink in sinks.values():
            sink.close()
    print(", ".join(f"{n} {name}" for name, n in counts.items()) + f" in {args.out_dir}")
    return 0


def _diff(args: argparse.Namespace, settings: Settings) -> int:
    import orjson

    from journey.lab.analysis import analyse
    from journey.lab.diff import deltas_jsonl, diff_runs, diff_section, diff_text
    from journey.lab.report import render_html

    if _plotly_missing("diff"):
        return 2
    base = _run_one(args, settings, args.base, args.out_dir / "base")
    if isinstance(base, int):
        return base
    candidate = _run_one(args, settings, args.candidate, args.out_dir / "candidate")
    if isinstance(candidate, int):
        return candidate
    diff = diff_runs(base, candidate)
    text = diff_text(diff)
    names = (", ".join(args.base), ", ".join(args.candidate))
    analysis = analyse(candidate, input_name=args.input.name, margin=args.margin,
                       conversion_window_days=args.window_days, primary_rule=args.primary_rule)
    report = args.out_dir / "diff.html"
    report.write_text(render_html(analysis, diff_section=diff_section(diff, *names)),
                      encoding="utf-8")
    (args.out_dir / "diff.txt").write_text(text, encoding="utf-8")
    with (args.out_dir / "diff.jsonl").open("wb") as handle:
        for row in deltas_jsonl(diff):
            handle.write(orjson.dumps(row) + b"\n")
    print(text, end="")
    print(f"report: {report}")
    return 0


def _run_one(args: argparse.Namespace, settings: Settings, journeys: list[str] | None,
             out_dir: Path) -> RunResult | int:
    """A RunResult, or the exit status when the run could not start."""
    from pydantic import ValidationError

    from journey.engine.definitions import DefinitionError
    from journey.engine.events import to_epoch_ms
    from journey.lab.run import lab_settings, run_file

    if not args.input.is_file():
        return _fail(args.command, f"no such file: {args.input}")
    until_ms = None
    if args.until is not None:
        try:
            moment = datetime.fromisoformat(args.until)
        except ValueError:
            return _fail(args.command, f"--until {args.until!r} is not an ISO 8601 time")
        if moment.tzinfo is None:
            return _fail(args.command, "--until needs a UTC offset, e.g. 2026-01-01T00:00:00Z")
        until_ms = to_epoch_ms(moment)
    try:
        chosen = lab_settings(settings, journeys, args.holdout, args.holdout_salt)
        if args.churn_params is not None:
            chosen = Settings.model_validate(
                {**chosen.model_dump(), "churn_params": args.churn_params})
        progress = None if args.no_progress or not sys.stderr.isatty() else sys.stderr
        return run_file(args.input, chosen, out_dir, until_ms=until_ms, progress=progress)
    except (DefinitionError, ValidationError, ValueError, OSError) as exc:
        return _fail(args.command, str(exc))


def _fail(command: str, message: str) -> int:
    print(f"journey {command}: {message}", file=sys.stderr)
    return 2


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1: {text!r}")
    return value
