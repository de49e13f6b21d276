"""The Compose stack's structure (no Docker engine here): services, health checks, named
volumes, and that Prometheus and Grafana are wired to what the repository ships."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from journey.pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
WORKERS = ("journey-1", "journey-2")


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def services() -> dict[str, Any]:
    return dict(compose()["services"])


def test_the_stack_has_kafka_two_workers_prometheus_grafana_and_a_loader() -> None:
    assert set(services()) == {"kafka", *WORKERS, "prometheus", "grafana", "loader"}


def test_every_long_running_service_has_a_health_check_and_waits_for_what_it_needs() -> None:
    s = services()
    for name in ("kafka", *WORKERS, "prometheus", "grafana"):
        assert s[name]["healthcheck"]["test"], name
    assert s["journey-1"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert s["journey-2"]["depends_on"]["journey-1"]["condition"] == "service_healthy"
    assert s["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert {n for n, c in s["loader"]["depends_on"].items()
            if c["condition"] == "service_healthy"} == set(WORKERS)


def test_the_workers_share_one_consumer_group_and_keep_their_state_in_named_volumes() -> None:
    s, declared = services(), set(compose()["volumes"])
    envs = [s[w]["environment"] for w in WORKERS]
    assert envs[0]["JOURNEY_APP_ID"] == envs[1]["JOURNEY_APP_ID"]
    assert all(e["JOURNEY_KAFKA_BOOTSTRAP"] == "kafka:9092" for e in envs)
    data = [v.split(":")[0] for w in WORKERS for v in s[w]["volumes"]]
    assert len(set(data)) == 2 and set(data) <= declared
    # each volume holds its worker's RocksDB store (the image's JOURNEY_DATA_DIR)
    assert all(e.get("JOURNEY_STORE", "rocksdb://") == "rocksdb://" for e in envs)
    assert all(v.split(":")[1] == "/data" for w in WORKERS for v in s[w]["volumes"])
    for name in ("prometheus", "grafana"):
        named = [v.split(":")[0] for v in s[name]["volumes"] if not v.startswith("./")]
        assert named and set(named) <= declared, name


def test_each_worker_advertises_its_own_service_name_for_routed_lookups() -> None:
    # Bound to 0.0.0.0 in their containers, the workers would otherwise each advertise
    # their container's hostname; the service names are what the other worker resolves.
    s = services()
    for worker in WORKERS:
        env = s[worker]["environment"]
        port = env["JOURNEY_WEB_PORT"]
        assert env["JOURNEY_WEB_HOST"] == "0.0.0.0"
        assert env["JOURNEY_WEB_ADVERTISED_URL"] == f"http://{worker}:{port}"
        assert Settings(web_advertised_url=env["JOURNEY_WEB_ADVERTISED_URL"]).advertised_url() \
            == f"http://{worker}:{port}"


def test_published_ports_bind_to_loopback() -> None:
    for name, service in services().items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_prometheus_scrapes_both_workers_with_the_rules_it_mounts() -> None:
    s = services()["prometheus"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in s["volumes"]}
    assert mounts["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert mounts["./deploy/prometheus/rules"] == "/etc/prometheus/rules"
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "journey"]
    port = services()["journey-1"]["environment"]["JOURNEY_WEB_PORT"]
    assert job["static_configs"][0]["targets"] == [f"{w}:{port}" for w in WORKERS]


def test_grafana_mounts_the_provisioning_and_the_generated_dashboards() -> None:
    mounts = services()["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    for local in (v.split(":")[0] for v in mounts if v.startswith("./")):
        assert (REPO / local).is_dir(), local
    assert list((REPO / "deploy" / "grafana" / "dashboards").glob("*.json"))


def test_the_loader_replays_a_file_that_the_image_contains() -> None:
    loader = services()["loader"]
    command = loader["command"]
    assert command[0] == "replay"
    assert (REPO / command[1]).is_file()
    assert "COPY journey ./journey" in (REPO / "Dockerfile").read_text()
