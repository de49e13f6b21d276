"""Test support: Debian's Prometheus (server and promtool), installed on demand, run on loopback."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.kafka import REPO, free_port

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
#: the commented token example of deploy/prometheus/prometheus.yml: "  # " before each line
_TOKEN_EXAMPLE = re.compile(r"^ *# (authorization:\n(?: *#   .*\n)+)", re.MULTILINE)


def token_example(credentials_file: Path) -> dict[str, Any]:
    """The journey job's `authorization` block as deploy/prometheus/prometheus.yml shows it
    (commented out), uncommented and pointed at `credentials_file`."""
    found = _TOKEN_EXAMPLE.search((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert found is not None, "no commented authorization block in prometheus.yml"
    text = re.sub(r"^ *# ", "", found.group(1), flags=re.MULTILINE)
    block = dict(yaml.safe_load(text))
    block["authorization"]["credentials_file"] = str(credentials_file)
    return block


def tool(name: str) -> str:
    """The path of promtool or prometheus; installs Debian's package when missing."""
    found = shutil.which(name)
    if found is None:
        subprocess.run([str(REPO / "scripts" / "ensure-prometheus.sh")], check=True)
        found = shutil.which(name)
    assert found is not None, f"{name} is not installed"
    return found


@dataclass
class PrometheusServer:
    """A real Prometheus on loopback with its own config, rules and temporary storage."""

    workdir: Path
    targets: dict[str, list[str]]
    interval_s: int = 1
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    #: more settings of every scrape job (an `authorization` block, say)
    scrape: dict[str, Any] = field(default_factory=dict)

    def start(self) -> PrometheusServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": f"{self.interval_s}s",
                       "evaluation_interval": f"{self.interval_s}s"},
            "rule_files": [str(p) for p in RULE_FILES],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}], **self.scrape}
                for job, targets in self.targets.items()
            ],
        }))
        log = (self.workdir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_tail()}")
            with suppress(OSError), urllib.request.urlopen(self.url("/-/ready"), timeout=1) as r:
                if r.status == 200:
                    return self
            time.sleep(0.2)
        raise TimeoutError(f"prometheus not ready:\n{self.log_tail()}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path: str, **params: str) -> Any:
        """GET an /api/v1 endpoint; the decoded JSON answer, errors included (not raised)."""
        query = urllib.parse.urlencode(params)
        request = urllib.request.Request(self.url(f"/api/v1/{path}?{query}"))
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422 carry the error as JSON
            return json.loads(exc.read())

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        return list(answer["data"]["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expr: str, accept: Any, timeout_s: float = 60.0) -> float:
        """Poll expr until accept(value) holds; returns the value."""
        deadline = time.monotonic() + timeout_s
        last: float | None = None
        while time.monotonic() < deadline:
            last = self.value(expr)
            if last is not None and accept(last):
                return last
            time.sleep(0.5)
        raise AssertionError(f"{expr} never met the condition; last value {last}")

    def alerts(self) -> list[dict[str, Any]]:
        answer = self.api("alerts")
        assert answer["status"] == "success", answer
        return list(answer["data"]["alerts"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "prometheus.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
