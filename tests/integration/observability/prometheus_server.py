"""The Debian Prometheus server, run by a test against the shipped config (targets local)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy.broker import free_port


def scrape_config(shipped: Path, targets: Mapping[str, str], directory: Path) -> Path:
    """The shipped config with each job's target replaced by a local address, 1 s scrapes."""
    config = yaml.safe_load(shipped.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["global"]["scrape_timeout"] = "1s"
    config["rule_files"] = [str((shipped.parent / f).resolve()) for f in config["rule_files"]]
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
            jobs.append(job)
    missing = set(targets) - {job["job_name"] for job in jobs}
    assert not missing, f"no scrape job in {shipped} for {sorted(missing)}"
    config["scrape_configs"] = jobs
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def _api(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as response:  # noqa: S310
            return json.loads(response.read())["data"]

    def target_health(self) -> dict[str, str]:
        active = self._api("/api/v1/targets")["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in active}

    def wait_targets_up(self, jobs: set[str], timeout: float) -> dict[str, str]:
        """Poll until every job has been scraped successfully (or the deadline passes)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                health = self.target_health()
            except OSError:
                health = {}
            if set(health) >= jobs and all(health[j] == "up" for j in jobs):
                return health
            if time.monotonic() > deadline or self.process.poll() is not None:
                return health
            time.sleep(0.2)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query (empty when nothing matches)."""
        data = self._api(f"/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        return list(data["result"])

    def wait_query(self, expr: str, timeout: float) -> list[dict[str, Any]]:
        """Poll an instant query until its result is not empty (or the deadline passes)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline or self.process.poll() is not None:
                return result
            time.sleep(0.2)

    def rule_groups(self) -> dict[str, str]:
        """Each rule group and the worst health of its rules after an evaluation."""
        deadline = time.monotonic() + 15
        while True:
            groups = self._api("/api/v1/rules")["groups"]
            health = {
                g["name"]: "ok" if all(r["health"] == "ok" for r in g["rules"]) else "bad"
                for g in groups
            }
            evaluated = all(r["health"] != "unknown" for g in groups for r in g["rules"])
            if (groups and evaluated) or time.monotonic() > deadline:
                return health
            time.sleep(0.2)


@contextmanager
def run_prometheus(config: Path, storage: Path) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: run scripts/system-deps"
    port = free_port()
    log = storage.parent / "prometheus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        prometheus = Prometheus(f"http://127.0.0.1:{port}", process, log)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"{prometheus.url}/-/ready", timeout=2):  # noqa: S310
                        break
                except OSError as exc:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(log.read_text()) from exc
                    time.sleep(0.1)
            yield prometheus
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
