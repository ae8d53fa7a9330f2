"""Throughput of compiled transforms: ``python -m bench.transforms``."""

from __future__ import annotations

from typing import Any

from bench.microbench import calls_per_second
from sluice_runtime.config import Transform
from sluice_runtime.transform.compiler import compile_transform
from sluice_runtime.transform.context import TransformContext

_ENVELOPE: dict[str, Any] = {
    "topic": "ad-views",
    "partition": 3,
    "offset": 1042,
    "timestamp": 1732700000000,
    "key": "user-17",
    "headers": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    "value": {"user": {"id": 17, "name": "Ann"}, "device": "ios-17", "amount": 12.5},
}

_SPECS: dict[str, dict[str, Any]] = {
    "template": {
        "template": {
            "paths": {"uid": "$.value.user.id", "at": "$.timestamp"},
            "template": '{"user": <uid>, "seenAt": <at>}',
        }
    },
    "text_template": {
        "template": {
            "paths": {"name": "$.value.user.name", "device": "$.value.device"},
            "template": "<name> watched on <device>",
        }
    },
    "json_path": {"jsonPath": "$.value.user"},
    "udf": {
        "udf": {
            "source": "def handle_message(event, context):\n"
            "    return {'user': event['value']['user']['id'], 'at': event['timestamp']}\n"
        }
    },
}


def bench_transforms(seconds: float = 1.0) -> dict[str, float]:
    """Transforms per second of each kind, each measured for about ``seconds``."""
    context = TransformContext(connector="bench", namespace="default")
    return {
        name: calls_per_second(
            compile_transform(Transform.model_validate(spec), context), _ENVELOPE, seconds
        )
        for name, spec in _SPECS.items()
    }


if __name__ == "__main__":
    for kind, rate in bench_transforms().items():
        print(f"{kind:>14}: {rate:12,.0f} transforms/s")
