"""The hot-path micro-benchmarks that live next to the code they measure."""

from __future__ import annotations

from collections.abc import Callable

from bench.report import Row, Target


def patterns_row(repeat: int, quick: bool, log: Callable[[str], None]) -> Row:
    from bench.patterns import bench_patterns

    row = Row(
        "patterns",
        "compiled EventBridge pattern evaluations per second on one core (typical 3-field "
        "pattern; the slower of a matching and a non-matching event)",
        "evaluations_per_s",
        "evals/s",
        Target(">=", 1_000_000),
        also={"match_per_s": ("match", "/s"), "no_match_per_s": ("no match", "/s")},
    )
    for index in range(repeat):
        rates = bench_patterns(0.4 if quick else 2.0)
        figures = {**rates, "evaluations_per_s": min(rates.values())}
        row.runs.append(figures)
        log(
            f"  run {index + 1}/{repeat}: match {rates['match_per_s']:,.0f}/s, "
            f"no match {rates['no_match_per_s']:,.0f}/s"
        )
    return row


def transforms_row(repeat: int, quick: bool, log: Callable[[str], None]) -> Row:
    from bench.transforms import bench_transforms

    row = Row(
        "transforms",
        "compiled JSON template transforms per second on one core (other kinds alongside)",
        "template",
        "transforms/s",
        Target(">=", 300_000),
        also={
            "text_template": ("text template", "/s"),
            "json_path": ("jsonPath", "/s"),
            "udf": ("udf", "/s"),
        },
    )
    for index in range(repeat):
        rates = bench_transforms(0.2 if quick else 1.0)
        row.runs.append(rates)
        log(
            f"  run {index + 1}/{repeat}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items())
        )
    return row


def bodies_row(repeat: int, quick: bool, log: Callable[[str], None]) -> Row:
    """µs to write one record into a request body, per batch format: the part of a
    record's cost that grows with the format (the peers rows' arithmetic needs it)."""
    from bench.bodies import bench_bodies

    formats = ("cloudevents-batch", "json-array", "json-values")
    row = Row(
        "bodies",
        "µs of one core to write a pass-through record (the peers rows' ~200-byte keyed "
        "JSON values) into a request body of 100, per batch format; headline "
        "cloudevents-batch",
        "cloudevents-batch",
        "µs/record",
        None,
        also={name: (name, "µs/record") for name in formats[1:]},
    )
    for index in range(repeat):
        costs = bench_bodies(formats, 0.3 if quick else 2.0)
        row.runs.append(costs)
        log(
            f"  run {index + 1}/{repeat}: "
            + ", ".join(f"{name} {cost:.2f} µs/record" for name, cost in costs.items())
        )
    return row
