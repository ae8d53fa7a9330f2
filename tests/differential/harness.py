"""Running patterns and events through event-ruler (in one JVM) and through Sluice."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sluice_runtime import exactjson
from sluice_runtime.envelope import decode_bytes
from sluice_runtime.patterns import PatternError, compile_pattern

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "event-ruler.sh"
REFUSED = "refused"


@dataclass(frozen=True)
class Verdicts:
    """Per pattern: REFUSED, or one bool per event."""

    refused_because: str | None
    matches: tuple[bool, ...]


def event_ruler_classpath() -> str:
    """Fetches and compiles once (cached); raises RuntimeError saying what is missing."""
    result = subprocess.run(
        [str(SCRIPT), "classpath"], capture_output=True, text=True, timeout=1200, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip() or f"{SCRIPT} failed")
    return result.stdout.strip().splitlines()[-1]


def run_event_ruler(classpath: str, cases: Sequence[tuple[str, Sequence[str]]]) -> list[Verdicts]:
    """event-ruler's verdicts for (pattern text, event texts) cases, in one JVM."""
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java not found on PATH; install a Java 17+ runtime")
    lines = "".join(
        json.dumps({"pattern": pattern, "events": list(events)}) + "\n" for pattern, events in cases
    )
    result = subprocess.run(
        # A short-lived JVM: the client compiler and the serial collector start fastest.
        [
            java,
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-cp",
            classpath,
            "EventRulerHarness",
        ],
        input=lines,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the event-ruler harness failed: {result.stderr.strip()[-2000:]}")
    answers = result.stdout.splitlines()
    if len(answers) != len(cases):
        raise RuntimeError(f"the harness answered {len(answers)} of {len(cases)} cases")
    verdicts = []
    for answer, (_, events) in zip(answers, cases, strict=True):
        if answer.startswith("ERR "):
            verdicts.append(Verdicts(answer[4:], ()))
            continue
        bits = answer.removeprefix("OK ")
        if len(bits) != len(events):
            raise RuntimeError(f"unexpected harness answer {answer!r}")
        verdicts.append(Verdicts(None, tuple(bit == "1" for bit in bits)))
    return verdicts


def run_sluice(pattern: str, events: Sequence[str], *, text_allowed: bool = False) -> Verdicts:
    """Sluice's verdicts: the pattern read as ``sluice test-pattern`` reads it, each event
    decoded as the runtime decodes a record's value (JSON, or with ``text_allowed`` the
    text the runtime makes of a value it cannot read as JSON)."""
    try:
        matches = compile_pattern(exactjson.loads(pattern))
    except PatternError as error:
        return Verdicts(str(error), ())
    decoded = [decode_bytes(event.encode()) for event in events]
    if not text_allowed and any(encoding != "json" for _, encoding in decoded):
        raise ValueError(f"an event is not JSON: {events}")
    return Verdicts(None, tuple(matches(event) for event, _ in decoded))
