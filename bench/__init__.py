"""Sluice's benchmarks: ``python -m bench`` (``make bench``).

Runs the runtime as a separate process against a real Kafka broker and a local function
server in another process, plus the hot-path micro-benchmarks and an HTTP client
comparison, then writes the figures to ``bench-results/latest.{json,md}``.
See docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
