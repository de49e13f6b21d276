"""The backtest report opened in a real headless Chromium (Debian's package): charts are drawn."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from journey.lab.analysis import analyse
from journey.lab.report import render_html
from journey.lab.run import lab_settings, run_file
from journey.lab.simulate import SimulationConfig, simulate, write_jsonl
from journey.pipeline.settings import Settings
from tests.support.png import pixels

REPO = Path(__file__).resolve().parents[2]
#: plotly's first default colour, the fill of the funnel's bars
FUNNEL_BLUE = (99, 110, 250)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium binary; scripts/chromium.sh installs Debian's package when it is missing."""
    done = subprocess.run([str(REPO / "scripts" / "chromium.sh")], capture_output=True,
                          text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    events = folder / "population.jsonl"
    write_jsonl(simulate(SimulationConfig(seed=4, customers=300)), events)
    settings = lab_settings(Settings(), ["touchpoint_journey", "dentist"], holdout=0.2)
    analysis = analyse(run_file(events, settings, folder), input_name=events.name)
    path = folder / "report.html"
    path.write_text(render_html(analysis), encoding="utf-8")
    return path


def headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)


def test_the_funnel_chart_is_drawn_as_svg_after_the_scripts_ran(
    chromium: str, report: Path, tmp_path: Path
) -> None:
    # When Chromium loads the report offline and runs its scripts
    done = headless(chromium, tmp_path / "profile", "--dump-dom", report.as_uri())

    # Then the funnel's div holds plotly's funnel layer with one bar per stage reached
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    start = dom.index('id="funnel-touchpoint_journey"')
    end = dom.index('id="funnel-dentist"')
    funnel = dom[start:end]
    assert 'class="funnellayer' in funnel
    bars = re.findall(r'<g class="point"><path d="M[0-9]', funnel)
    assert len(bars) >= 8  # 9 stages; a stage nobody reached draws no bar
    assert "main-svg" in dom[end:]  # the other charts are drawn too


def test_a_screenshot_of_the_report_shows_the_funnel(
    chromium: str, report: Path, tmp_path: Path
) -> None:
    shot = tmp_path / "report.png"

    done = headless(chromium, tmp_path / "profile", "--hide-scrollbars",
                    "--window-size=1000,900", f"--screenshot={shot}", report.as_uri())

    assert done.returncode == 0, done.stderr[-2000:]
    width, height, colours = pixels(shot)
    assert (width, height) == (1000, 900)
    # the funnel's bars fill a good part of the first screen
    assert colours[FUNNEL_BLUE] > 0.05 * width * height
