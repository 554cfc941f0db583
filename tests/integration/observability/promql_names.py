"""Metric names used by PromQL expressions in the shipped dashboards and alert rules,
the `job` each of their selectors names, and metric names a `/metrics` exposition offers.

A small lexer, not a full PromQL parser: it drops strings, label matchers, grouping
clauses and range selectors, then keeps identifiers that are not functions or keywords;
`selectors` then reads each name's own label matchers back from the expression.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan",
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values", "group",
}  # fmt: skip
# Series Prometheus itself makes for every target.
BUILTIN = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
           "scrape_samples_post_metric_relabeling", "scrape_series_added"}  # fmt: skip

_GRAFANA_VARS = re.compile(r"\$(__rate_interval|__interval|__range|__range_s|__range_ms)\b")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (functions, keywords, labels excluded)."""
    text = _GRAFANA_VARS.sub("5m", expr)
    text = _STRINGS.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Selector:
    """One metric an expression selects and the matchers it puts on the `job` label."""

    metric: str
    job: tuple[tuple[str, str], ...] = ()  # (operator, value), e.g. ("=", "taskflow-x")

    def jobs(self, known: Iterable[str]) -> set[str]:
        """The jobs among `known` this selector reads from (all of them without a matcher)."""
        return {name for name in known if all(_match(op, v, name) for op, v in self.job)}

    def __str__(self) -> str:
        matchers = ",".join(f'job{op}"{value}"' for op, value in self.job)
        return f"{self.metric}{{{matchers}}}" if matchers else self.metric


def _match(op: str, value: str, job: str) -> bool:
    if op in ("=", "!="):
        return (job == value) == (op == "=")
    return (re.fullmatch(value, job) is not None) == (op == "=~")


def selectors(expr: str) -> list[Selector]:
    """Each metric the expression selects, once per place it is selected, with the `job`
    matchers of that place (`rate(x{job="a"}[5m]) / x` is two selectors of x)."""
    text = _GRAFANA_VARS.sub("5m", expr)
    found = []
    for name in sorted(metric_names(expr)):
        where = re.compile(rf"(?<![\w.:$\"]){re.escape(name)}(?![\w:])\s*(\{{[^{{}}]*\}})?")
        for match in where.finditer(text):
            job = tuple(
                (op, value.replace("\\\\", "\\"))
                for label, op, value in _MATCHER.findall(match.group(1) or "")
                if label == "job"
            )
            found.append(Selector(name, job))
    return found


def _all_values(dash: Mapping[str, object]) -> dict[str, str]:
    """Each template variable's "All" value (a regex), as Grafana substitutes it."""
    templating = dash.get("templating")
    variables = templating.get("list", []) if isinstance(templating, dict) else []
    return {v["name"]: v.get("allValue") or ".*" for v in variables if v.get("includeAll")}


def _with_all(expr: str, values: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        return values.get(match[1] or match[2], match[0])

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def dashboard_exprs(directory: Path) -> dict[str, list[str]]:
    """PromQL of every Prometheus panel target, keyed by dashboard file and panel; template
    variables (`$job`) are replaced by their "All" value."""
    found: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.json")):
        dash = json.loads(path.read_text())
        values = _all_values(dash)
        for panel in dash.get("panels", []):
            for target in panel.get("targets", []):
                source = target.get("datasource") or panel.get("datasource") or {}
                if source.get("type") == "prometheus" and target.get("expr"):
                    found.setdefault(f"{path.name}: {panel['title']}", []).append(
                        _with_all(target["expr"], values)
                    )
        for variable in dash.get("templating", {}).get("list", []):
            query = variable.get("query")
            if variable.get("type") == "query" and isinstance(query, dict):
                inner = re.search(r"label_values\((.*),\s*\w+\)\s*$", query.get("query", ""))
                if inner:
                    found.setdefault(f"{path.name}: ${variable['name']}", []).append(inner[1])
    return found


def rule_exprs(path: Path) -> dict[str, list[str]]:
    """PromQL of every alerting/recording rule, keyed by rule name."""
    groups = yaml.safe_load(path.read_text())["groups"]
    return {
        f"{path.name}: {rule.get('alert') or rule.get('record')}": [rule["expr"]]
        for group in groups
        for rule in group["rules"]
    }


def exposed_names(expositions: Iterable[str]) -> set[str]:
    """Every series name the expositions offer, including families with no sample yet."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for text in expositions:
        for family in text_string_to_metric_families(text):
            names.update(family.name + s for s in suffixes.get(family.type, ("",)))
            names.update(sample.name for sample in family.samples)
    return names
