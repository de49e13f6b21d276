"""Reads a transactions file into per-customer histories (x, t_x, age) for fitting churn models."""

from __future__ import annotations

import csv
import itertools
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from journey.engine.alive import UNIT_DAYS

DATE_FORMATS_HELP = "iso (2024-03-01 or a full timestamp), YYYYMMDD, or a strptime pattern"


class TransactionError(ValueError):
    """A transactions file that cannot be read; the message names the line and the problem."""


@dataclass(frozen=True, slots=True)
class TransactionFormat:
    """How to read a file. Without a header, columns are 1-based positions such as "2"."""

    customer_column: str = "customer_id"
    date_column: str = "date"
    amount_column: str | None = None
    date_format: str = "iso"
    delimiter: str | None = ","  # None: fields are separated by runs of whitespace
    header: bool = True

    def __post_init__(self) -> None:
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ValueError(f"the delimiter must be one character, not {self.delimiter!r}")


@dataclass(frozen=True, slots=True)
class Transaction:
    line: int
    customer_id: str
    day: date
    amount: float | None


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    """One customer over the calibration period; purchases on the same day count as one."""

    customer_id: str
    x: int  # repeat purchase days, after the first
    t_x: float  # age at the last purchase, in the summary's unit
    age: float  # age at the end of calibration (T in the papers)
    first: date
    mean_repeat_amount: float | None  # mean spend per repeat purchase day


@dataclass(frozen=True, slots=True)
class Summary:
    customers: tuple[CustomerHistory, ...]
    calibration_end: date
    unit: str
    transactions: int
    transactions_after_end: int


def read_summary(
    path: Path,
    fmt: TransactionFormat | None = None,
    *,
    calibration_end: date | None = None,
    unit: str = "weeks",
) -> Summary:
    """The per-customer summary of a transactions file."""
    return summarise(read_transactions(path, fmt), calibration_end=calibration_end, unit=unit)


def read_transactions(path: Path, fmt: TransactionFormat | None = None) -> Iterator[Transaction]:
    """Each transaction in the file, in file order; TransactionError names the bad line."""
    fmt = fmt or TransactionFormat()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = _rows(handle, fmt.delimiter)
        first = next(rows, None)
        if first is None:
            raise TransactionError("the file is empty")
        if fmt.header:
            columns = _named_columns(first[1], fmt, first[0])
            body: Iterable[tuple[int, list[str]]] = rows
        else:
            columns = _positional_columns(fmt)
            body = itertools.chain([first], rows)
        for line, fields in body:
            yield _transaction(line, fields, columns, fmt.date_format)


def summarise(
    transactions: Iterable[Transaction], *, calibration_end: date | None = None, unit: str = "weeks"
) -> Summary:
    """Fold transactions into histories. The calibration ends, inclusive, on the given day or
    on the last transaction's day; later transactions are counted and left out."""
    if unit not in UNIT_DAYS:
        raise ValueError(f"unit must be one of {', '.join(UNIT_DAYS)}, not {unit!r}")
    days: dict[str, dict[date, float | None]] = {}
    count = after = 0
    last_seen: date | None = None
    for tx in transactions:
        count += 1
        last_seen = tx.day if last_seen is None else max(last_seen, tx.day)
        if calibration_end is not None and tx.day > calibration_end:
            after += 1
            continue
        spend = days.setdefault(tx.customer_id, {})
        previous = spend.get(tx.day)
        spend[tx.day] = None if tx.amount is None else (previous or 0.0) + tx.amount
    end = calibration_end or last_seen
    if end is None:
        raise TransactionError("no transactions to summarise")
    per_unit = UNIT_DAYS[unit]
    customers = tuple(_history(cid, spend, end, per_unit) for cid, spend in days.items())
    return Summary(customers, end, unit, count, after)


def parse_date(text: str, date_format: str) -> date:
    """A day from text in the given format; ValueError says what was expected."""
    if date_format == "YYYYMMDD":
        if len(text) != 8 or not text.isdigit():
            raise ValueError(f"date {text!r} is not YYYYMMDD")
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError as exc:
            raise ValueError(f"date {text!r} is not a day: {exc}") from None
    if date_format == "iso":
        try:
            return (
                date.fromisoformat(text) if len(text) <= 10 else datetime.fromisoformat(text).date()
            )
        except ValueError:
            raise ValueError(f"date {text!r} is not an ISO 8601 date or timestamp") from None
    try:
        parsed = time.strptime(text, date_format)
    except ValueError:
        raise ValueError(f"date {text!r} does not match {date_format!r}") from None
    return date(parsed.tm_year, parsed.tm_mon, parsed.tm_mday)


def _history(
    customer_id: str, spend: dict[date, float | None], end: date, per_unit: int
) -> CustomerHistory:
    ordered = sorted(spend)
    first, last = ordered[0], ordered[-1]
    repeat = [spend[d] for d in ordered[1:]]
    amounts = [a for a in repeat if a is not None]
    mean = sum(amounts) / len(amounts) if repeat and len(amounts) == len(repeat) else None
    return CustomerHistory(
        customer_id=customer_id,
        x=len(repeat),
        t_x=(last - first).days / per_unit,
        age=(end - first).days / per_unit,
        first=first,
        mean_repeat_amount=mean,
    )


@dataclass(frozen=True, slots=True)
class _Columns:
    customer: int
    day: int
    amount: int | None


def _rows(lines: Iterable[str], delimiter: str | None) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank line."""
    if delimiter is None:
        for number, text in enumerate(lines, start=1):
            if text.strip():
                yield number, text.split()
        return
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise TransactionError(f"line {reader.line_num}: {exc}") from None
        if any(f.strip() for f in fields):
            yield reader.line_num, [f.strip() for f in fields]


def _named_columns(header: list[str], fmt: TransactionFormat, line: int) -> _Columns:
    def index(name: str) -> int:
        if name not in header:
            found = ", ".join(header)
            raise TransactionError(f"line {line}: no column {name!r} in the header ({found})")
        return header.index(name)

    amount = None if fmt.amount_column is None else index(fmt.amount_column)
    return _Columns(index(fmt.customer_column), index(fmt.date_column), amount)


def _positional_columns(fmt: TransactionFormat) -> _Columns:
    def index(name: str) -> int:
        if not name.isdigit() or int(name) < 1:
            raise TransactionError(f"without a header, column {name!r} must be a position from 1")
        return int(name) - 1

    amount = None if fmt.amount_column is None else index(fmt.amount_column)
    return _Columns(index(fmt.customer_column), index(fmt.date_column), amount)


def _transaction(line: int, fields: list[str], columns: _Columns, date_format: str) -> Transaction:
    needed = max(columns.customer, columns.day, columns.amount or 0) + 1
    if len(fields) < needed:
        raise TransactionError(f"line {line}: {len(fields)} fields, expected at least {needed}")
    customer_id = fields[columns.customer]
    if not customer_id:
        raise TransactionError(f"line {line}: the customer id is empty")
    try:
        day = parse_date(fields[columns.day], date_format)
    except ValueError as exc:
        raise TransactionError(f"line {line}: {exc}") from None
    amount = None
    if columns.amount is not None:
        amount = _amount(line, fields[columns.amount])
    return Transaction(line, customer_id, day, amount)


def _amount(line: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TransactionError(f"line {line}: amount {text!r} is not a number") from None
    if not math.isfinite(value):
        raise TransactionError(f"line {line}: amount {text!r} is not a finite number")
    return value
