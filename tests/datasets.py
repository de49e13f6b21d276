"""Public data sets for tests: fetched once from PyPI with pip, cached under .local/datasets."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".local" / "datasets"

# The CDNOW sample (Fader, Hardie & Lee 2005) ships inside the lifetimes wheel. The hash pins
# the exact wheel, so the data the tests assert on cannot change under them.
LIFETIMES_VERSION = "0.11.3"
LIFETIMES_WHEEL_SHA256 = "261e3dc89977c2b60767ca6728aaa29d429de0c814635070a749c36555895da8"
CDNOW_FILES = (
    "CDNOW_sample.txt",  # raw: old id, id 1..2357, date YYYYMMDD, quantity, amount
    "CDNOW_master.txt",  # the whole cohort, 23,570 customers: id, date, quantity, amount
    "cdnow_customers_summary.csv",  # ID, frequency (x), recency (t_x), T; weeks, 2 decimals
    "cdnow_customers_summary_with_transactions.csv",  # ID, x, t_x, T, zbar
)


def cdnow_file(name: str = "CDNOW_sample.txt") -> Path:
    """The path of a CDNOW file from lifetimes/datasets/, extracted once and then reused."""
    if name not in CDNOW_FILES:
        raise ValueError(f"unknown CDNOW file {name!r}; one of {', '.join(CDNOW_FILES)}")
    target = CACHE / f"lifetimes-{LIFETIMES_VERSION}" / name
    if target.exists():
        return target
    with zipfile.ZipFile(_lifetimes_wheel()) as wheel:
        data = wheel.read(f"lifetimes/datasets/{name}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{name}.{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(target)  # atomic, so a concurrent reader never sees half a file
    return target


def _lifetimes_wheel() -> Path:
    downloads = CACHE / "wheels"
    wheel = _find_wheel(downloads)
    if wheel is None:
        _pip_download(f"lifetimes=={LIFETIMES_VERSION}", downloads)
        wheel = _find_wheel(downloads)
    if wheel is None:
        raise RuntimeError(
            f"pip download left no lifetimes {LIFETIMES_VERSION} wheel in {downloads}"
        )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != LIFETIMES_WHEEL_SHA256:
        raise RuntimeError(f"{wheel} has sha256 {digest}, expected {LIFETIMES_WHEEL_SHA256}")
    return wheel


def _find_wheel(folder: Path) -> Path | None:
    # The project publishes its wheel as "Lifetimes-...", capitalised.
    prefix = f"lifetimes-{LIFETIMES_VERSION}-"
    found = [p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix)]
    return found[0] if found else None


def _pip_download(requirement: str, folder: Path) -> None:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", requirement, "-d", str(folder),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip download {requirement} failed:\n{done.stderr.strip()}")
