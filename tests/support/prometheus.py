"""A real Prometheus (Debian's package) for end-to-end tests: scrapes given targets, evaluates rules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import requests
import yaml

from aura.testing.servers import free_port, wait_ready


class Prometheus:
    """Prometheus on a free loopback port with a short scrape interval; stopped by pid."""

    def __init__(
        self,
        tmp_path: Path,
        targets: list[str],
        rule_files: list[Path],
        interval: str = "2s",
        target_labels: dict[str, dict[str, str]] | None = None,
        alertmanagers: list[str] | None = None,
        features: tuple[str, ...] = (),
    ):
        """target_labels: static labels per target (e.g. the namespace and pod a Kubernetes
        scrape would add); alertmanagers: host:port of Alertmanagers to send alerts to;
        features: what --enable-feature turns on (e.g. exemplar-storage)."""
        self.features = features
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: apt-get install -y prometheus (.ci/run does this)"
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = tmp_path / f"prometheus-{self.port}"
        self.dir.mkdir()
        config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": "aura",
                    "metrics_path": "/metrics",
                    "static_configs": [
                        {"targets": [target], "labels": (target_labels or {}).get(target, {})} for target in targets
                    ],
                }
            ],
        }
        if alertmanagers:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]}
        self.config_path = self.dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> Prometheus:
        """Start and wait until it is ready."""
        with open(self.dir / "prometheus.log", "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    *(f"--enable-feature={feature}" for feature in self.features),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_ready(self.proc, f"{self.url}/-/ready", self.dir / "prometheus.log", "prometheus", timeout)
        return self

    def query(self, expr: str) -> list[dict]:
        """Instant query; raises on a PromQL error."""
        body = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        if body["status"] != "success":
            raise AssertionError(f"{expr}: {body.get('error')}")
        return body["data"]["result"]

    def query_exemplars(self, expr: str, start: float, end: float) -> list[dict]:
        """The exemplars of the series ``expr`` selects, stored between ``start`` and ``end`` (epoch seconds)."""
        body = requests.get(
            f"{self.url}/api/v1/query_exemplars", params={"query": expr, "start": start, "end": end}, timeout=10
        ).json()
        if body["status"] != "success":
            raise AssertionError(f"{expr}: {body.get('error')}")
        return body["data"]

    def alerts(self) -> list[dict]:
        """Active (pending or firing) alerts."""
        return requests.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]

    def rule_groups(self) -> list[dict]:
        """Loaded rule groups with each rule's health and last error."""
        return requests.get(f"{self.url}/api/v1/rules", timeout=10).json()["data"]["groups"]

    def targets(self) -> list[dict]:
        """Active scrape targets."""
        return requests.get(f"{self.url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]

    def stop(self) -> None:
        """Stop by pid."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
