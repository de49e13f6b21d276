"""The Prometheus rules in deploy/prometheus/: valid, and each one unit-tested by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.prometheus import PROMETHEUS_DIR, RULE_FILES, RULE_TESTS, token_example, tool


def _rules() -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def test_promtool_accepts_the_rule_files() -> None:
    done = subprocess.run([tool("promtool"), "check", "rules", *map(str, RULE_FILES)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: Path(p).name)
def test_promtool_rule_unit_tests_pass(test_file: Path) -> None:
    done = subprocess.run([tool("promtool"), "test", "rules", test_file.name],
                          capture_output=True, text=True, cwd=test_file.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_rule_is_exercised_by_a_promtool_test() -> None:
    tests = "\n".join(p.read_text() for p in RULE_TESTS)
    names = [r.get("record") or r["alert"] for r in _rules()]
    untested = [name for name in names if name not in tests]
    assert not untested, f"rules without a promtool test: {untested}"


def test_the_compose_prometheus_config_loads_the_rules() -> None:
    done = subprocess.run([tool("promtool"), "check", "config", "prometheus.yml"],
                          capture_output=True, text=True, cwd=PROMETHEUS_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    counts = [int(line.split()[1]) for line in done.stdout.splitlines()
              if line.strip().startswith("SUCCESS") and line.strip().endswith("rules found")]
    assert sum(counts) == len(_rules())


def test_the_token_example_of_the_compose_config_is_a_valid_scrape_config(
    tmp_path: Path,
) -> None:
    # Given the commented authorization block of prometheus.yml, uncommented, and a token file
    token_file = tmp_path / "journey-web-token"
    token_file.write_text("a-token")
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["rule_files"] = [str(p) for p in RULE_FILES]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "journey"]
    job.update(token_example(token_file))
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    # Then promtool accepts it, token file included
    done = subprocess.run([tool("promtool"), "check", "config", "prometheus.yml"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert job["authorization"] == {"type": "Bearer", "credentials_file": str(token_file)}
