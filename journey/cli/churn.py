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


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    column = "column name, or position from 1 with --no-header"
    fit.add_argument("--customer-column", default="customer_id", metavar="COLUMN", help=column)
    fit.add_argument("--date-column", default="date", metavar="COLUMN", help=column)
    fit.add_argument("--amount-column", metavar="COLUMN", help=f"optional; {column}")
    fit.add_argument("--date-format", default="iso", help=DATE_FORMATS_HELP)
    fit.add_argument(
        "--delimiter", default=",", help="one-character field separator, 'tab' or 'whitespace'"
    )
    fit.add_argument("--no-header", action="store_true", help="the file has no header line")
    fit.add_argument("--out", type=Path, required=True, metavar="FILE", help="params JSON to write")
    fit.set_defaults(handler=_fit)


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
    print(f"wrote {args.out}")
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


def _fail(message: str, *, status: int) -> int:
    print(f"journey churn fit: {message}", file=sys.stderr)
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
