"""The `journey churn` commands: fit churn models on a transactions file, write their parameters."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from journey.churn.transactions import (
    DATE_FORMATS_HELP,
    Summary,
    TransactionError,
    TransactionFormat,
    parse_date,
    read_summary,
)
from journey.engine.alive import MODELS, UNIT_DAYS, ChurnParams, ModelName, write_params_file
from journey.pipeline.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    churn = subparsers.add_parser("churn", help="churn (probability alive) models")
    commands = churn.add_subparsers(dest="churn_command", required=True)
    fit = commands.add_parser(
        "fit", help="fit BG/NBD and/or MBG/NBD to a transactions file and write the parameters"
    )
    fit.add_argument("--transactions", type=Path, required=True, metavar="FILE")
    fit.add_argument("--model", choices=[*MODELS, "both"], default="bgnbd")
    fit.add_argument("--unit", choices=list(UNIT_DAYS), default="weeks", help="model time unit")
    fit.add_argument(
        "--calibration-end",
        metavar="DATE",
        help="last day of calibration, inclusive; ISO or --date-format (default: last purchase)",
    )
    _format_options(fit, amount_help="optional; with it, a Gamma-Gamma spend model is fitted")
    fit.add_argument("--out", type=Path, required=True, metavar="FILE", help="params JSON to write")
    fit.set_defaults(handler=_fit)

    score = commands.add_parser(
        "score", help="P(alive), expected purchases and (with a spend model) spend and CLV, "
        "one CSV row per customer",
    )
    score.add_argument("--transactions", type=Path, required=True, metavar="FILE")
    score.add_argument("--params", type=Path, required=True, metavar="FILE",
                       help="params JSON from `journey churn fit`")
    score.add_argument("--model", choices=list(MODELS),
                       help="which model of the file (default: the best log-likelihood)")
    score.add_argument("--horizon", type=int, default=39,
                       help="expected purchases over N model units (default 39, as published)")
    score.add_argument("--margin", type=float, default=1.0,
                       help="profit share of spend for CLV, 0-1 (default 1: CLV of revenue)")
    score.add_argument("--discount-rate", type=float, default=0.0,
                       help="CLV discount rate per model unit (default 0)")
    score.add_argument("--calibration-end", metavar="DATE",
                       help="score as of this day (default: the params' calibration end)")
    _format_options(score)
    score.add_argument("--out", type=Path, metavar="FILE", help="CSV to write (default: stdout)")
    score.set_defaults(handler=_score)


def _format_options(parser: argparse.ArgumentParser, amount_help: str = "optional") -> None:
    column = "column name, or position from 1 with --no-header"
    parser.add_argument("--customer-column", default="customer_id", metavar="COLUMN", help=column)
    parser.add_argument("--date-column", default="date", metavar="COLUMN", help=column)
    parser.add_argument("--amount-column", metavar="COLUMN", help=f"{amount_help}; {column}")
    parser.add_argument("--date-format", default="iso", help=DATE_FORMATS_HELP)
    parser.add_argument(
        "--delimiter", default=",", help="one-character field separator, 'tab' or 'whitespace'"
    )
    parser.add_argument("--no-header", action="store_true", help="the file has no header line")


def _fit(args: argparse.Namespace, settings: Settings) -> int:
    from journey.churn.models import FitError, fit

    try:
        summary = _read(args)
    except TransactionError as exc:
        return _fail(f"{args.transactions}: {exc}", status=2)
    except (OSError, ValueError) as exc:
        return _fail(str(exc), status=2)
    if not summary.customers:
        return _fail("no customer purchased before the calibration end", status=2)
    print(
        f"{len(summary.customers)} customers, {summary.transactions} transactions "
        f"({summary.transactions_after_end} after {summary.calibration_end} left out)"
    )
    x, t_x, ages = zip(*((c.x, c.t_x, c.age) for c in summary.customers), strict=True)
    models: list[ModelName] = list(MODELS) if args.model == "both" else [args.model]
    fitted: list[ChurnParams] = []
    for model in models:
        try:
            params = fit(
                model,
                x,
                t_x,
                ages,
                unit=summary.unit,
                calibration_end=summary.calibration_end.isoformat(),
            )
        except FitError as exc:
            return _fail(str(exc), status=1)
        print(_describe(params))
        fitted.append(params)
    write_params_file(args.out, fitted)
    if args.amount_column is not None:
        status = _fit_spend(summary, args.out)
        if status:
            return status
    print(f"wrote {args.out}")
    return 0


def _fit_spend(summary: Summary, out: Path) -> int:
    from journey.churn.models import FitError
    from journey.churn.spend import add_spend_params, fit_spend

    repeat = [(c.x, c.mean_repeat_amount) for c in summary.customers
              if c.x > 0 and c.mean_repeat_amount is not None]
    try:
        spend = fit_spend([x for x, _ in repeat], [m for _, m in repeat])
    except (FitError, ValueError) as exc:
        return _fail(f"spend model: {exc}", status=1)
    add_spend_params(out, spend)
    print(f"gamma_gamma: p={spend.p:.4f} q={spend.q:.4f} v={spend.v:.4f} "
          f"({spend.customers} customers with repeat purchases)")
    return 0


def _score(args: argparse.Namespace, settings: Settings) -> int:
    from journey.churn.scores import score_customers, write_scores_csv
    from journey.churn.spend import read_spend_params
    from journey.engine.alive import read_params_file

    try:
        params = read_params_file(args.params, args.model)
        spend = read_spend_params(args.params)
    except (OSError, ValueError) as exc:
        return _fail(str(exc), status=2, command="score")
    if args.horizon < 0:
        return _fail("--horizon must not be negative", status=2, command="score")
    if args.calibration_end is None and params.calibration_end is not None:
        args.calibration_end = params.calibration_end
    args.unit = params.unit
    try:
        summary = _read(args)
    except TransactionError as exc:
        return _fail(f"{args.transactions}: {exc}", status=2, command="score")
    except (OSError, ValueError) as exc:
        return _fail(str(exc), status=2, command="score")
    if spend is not None and args.amount_column is None:
        print("journey churn score: the params have a spend model but no --amount-column was "
              "given; expected_spend and clv are left out", file=sys.stderr)
        spend = None
    if not summary.customers:
        return _fail(f"no customer of {args.transactions} made a first purchase on or before "
                     f"the calibration end {summary.calibration_end}: nothing to score "
                     "(--calibration-end moves it)", status=1, command="score")
    scores = score_customers(summary, params, spend, horizon=args.horizon, margin=args.margin,
                             discount_rate=args.discount_rate)
    if args.out is None:
        try:
            write_scores_csv(scores, sys.stdout)
        except BrokenPipeError:  # e.g. piped into head: the reader has what it wanted
            sys.stderr.close()
    else:
        with args.out.open("w", encoding="utf-8", newline="") as handle:
            write_scores_csv(scores, handle)
        print(f"wrote {len(scores.rows)} customers to {args.out}", file=sys.stderr)
    return 0


def _read(args: argparse.Namespace) -> Summary:
    fmt = TransactionFormat(
        customer_column=args.customer_column,
        date_column=args.date_column,
        amount_column=args.amount_column,
        date_format=args.date_format,
        delimiter=_DELIMITERS.get(args.delimiter, args.delimiter),
        header=not args.no_header,
    )
    end = _calibration_end(args.calibration_end, args.date_format)
    return read_summary(args.transactions, fmt, calibration_end=end, unit=args.unit)


_DELIMITERS: dict[str, str | None] = {"whitespace": None, "tab": "\t"}


def _fail(message: str, *, status: int, command: str = "fit") -> int:
    print(f"journey churn {command}: {message}", file=sys.stderr)
    return status


def _calibration_end(text: str | None, date_format: str) -> date | None:
    """The calibration end in ISO form, or else in the same format as the file's dates."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return parse_date(text, date_format)


def _describe(params: ChurnParams) -> str:
    return (
        f"{params.model}: r={params.r:.4f} alpha={params.alpha:.4f} a={params.a:.4f} "
        f"b={params.b:.4f} ({params.unit}) log-likelihood={params.log_likelihood:.2f}"
    )
