"""Benchmark rows, their medians and verdicts, and the console/JSON/Markdown reports."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from bench import ROOT


@dataclass(frozen=True)
class Target:
    op: Literal[">=", "<"]
    value: float

    def met(self, figure: float) -> bool:
        return figure >= self.value if self.op == ">=" else figure < self.value

    def text(self, unit: str) -> str:
        sign = "≥" if self.op == ">=" else "<"
        return f"{sign} {fmt(self.value)} {unit}".strip()


@dataclass
class Row:
    """One benchmark row: several runs of named figures; the headline one is judged."""

    name: str
    description: str
    headline: str  # key in each run's figures
    unit: str
    target: Target | None = None
    runs: list[dict[str, float]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    # figure name -> label and unit for the "also" column
    also: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def medians(self) -> dict[str, float]:
        keys: dict[str, None] = {}
        for run in self.runs:
            keys.update(dict.fromkeys(run))
        return {
            key: statistics.median([run[key] for run in self.runs if key in run]) for key in keys
        }

    @property
    def value(self) -> float | None:
        return self.medians.get(self.headline)

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "ERROR"
        if self.value is None:
            return "NO DATA"
        if self.target is None:
            return "INFO"
        return "PASS" if self.target.met(self.value) else "MISS"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "headline": self.headline,
            "unit": self.unit,
            "value": self.value,
            "target": None
            if self.target is None
            else {"op": self.target.op, "value": self.target.value},
            "verdict": self.verdict,
            "medians": self.medians,
            "runs": self.runs,
            "details": self.details,
            "error": self.error,
        }


def fmt(value: float | None) -> str:
    """Figures for people: thousands separators, few decimals."""
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def also_text(row: Row) -> str:
    medians = row.medians
    parts = [
        " ".join(part for part in (label, fmt(medians[key]), unit) if part)
        for key, (label, unit) in row.also.items()
        if key in medians
    ]
    if len(row.runs) > 1 and row.headline in medians:
        parts.append("runs " + " / ".join(fmt(run.get(row.headline)) for run in row.runs))
    if row.error:
        parts.append(row.error.splitlines()[0][:120])
    return "; ".join(parts)


def table_rows(rows: list[Row]) -> list[list[str]]:
    header = ["row", "figure (median)", "target", "result", "also"]
    body = [
        [
            row.name,
            "—" if row.value is None else f"{fmt(row.value)} {row.unit}",
            row.target.text(row.unit) if row.target else "— (informational)",
            row.verdict,
            also_text(row),
        ]
        for row in rows
    ]
    return [header, *body]


def console_table(rows: list[Row]) -> str:
    cells = table_rows(rows)
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]) - 1)]
    lines = []
    for index, line in enumerate(cells):
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
            + "  "
            + line[-1]
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths) + "  " + "-" * 20)
    return "\n".join(lines)


def markdown_table(cells: list[list[str]]) -> str:
    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    return "\n".join([line(cells[0]), line(["---"] * len(cells[0])), *(line(c) for c in cells[1:])])


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    try:
        with open("/proc/loadavg") as loadavg:
            return [float(x) for x in loadavg.read().split()[:3]]
    except (OSError, ValueError):
        return None


def environment() -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    cpu = ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((ln.split(":", 1)[1].strip() for ln in info if "model name" in ln), "")
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    import os

    from confluent_kafka import libversion

    return {
        "loadavg_end": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "git_commit": commit or None,
        "librdkafka": libversion()[0],
        "packages": {
            name: version(name)
            for name in (
                "confluent-kafka",
                "httpx",
                "httptools",
                "pysimdjson",
                "orjson",
                "httpx-aiohttp",
                "aiohttp",
            )
        },
    }


def write_reports(
    out: Path,
    rows: list[Row],
    args: dict[str, Any],
    started: float,
    extra_sections: list[Callable[[list[Row]], str]],
) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    document = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "args": args,
        "environment": {"loadavg_start": args.get("loadavg_start"), **env},
        "rows": [row.as_json() for row in rows],
    }
    json_path = out / "latest.json"
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")

    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    lines = [
        "# Sluice benchmark results",
        "",
        f"Generated {document['generated_at']} in {document['duration_s']} s by "
        f"`python -m bench {' '.join(args.get('argv', []))}`".rstrip()
        + ".",
        f"Machine: {env['cpus']} CPU ({env['cpu_model']}), Python {env['python']}, "
        f"librdkafka {env['librdkafka']}; {packages}; commit {env['git_commit']}; "
        f"load average {_load(args.get('loadavg_start'))} at the start, "
        f"{_load(env['loadavg_end'])} at the end.",
        "Figures are medians of the runs listed; see docs/benchmarks.md for what each row "
        "measures.",
        "",
        markdown_table(table_rows(rows)),
        "",
    ]
    for section in extra_sections:
        text = section(rows)
        if text:
            lines += [text, ""]
    md_path = out / "latest.md"
    md_path.write_text("\n".join(lines))
    return json_path, md_path


def _load(values: list[float] | None) -> str:
    return "?" if not values else "/".join(f"{v:.2f}" for v in values)
