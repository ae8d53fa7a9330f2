"""What a reconcile tells users: the Connector's status (its status subresource, applied
only when the plan has a new one) and the Events that ``kubectl describe`` shows.

Events go in two groups around the status write (see ``Plan``): what the reconcile did
before it, transitions the status now records after it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sluice_operator.conditions import ConditionType, find
from sluice_operator.kube import Kube
from sluice_operator.plan import Event, Plan
from sluice_operator.status import ConnectorStatus
from sluice_runtime.config import API_GROUP, API_VERSION, KIND

log = logging.getLogger("sluice.operator")


def report(kube: Kube, connector: dict[str, Any] | None, plan: Plan) -> bool:
    """Posts the plan's Events and writes its status; returns whether the status was
    written. A Connector that is gone (None) has nothing to report."""
    if connector is None:
        return False
    metadata = connector["metadata"]
    for event in plan.action_events:
        log.info(
            "%s Connector %s/%s: %s",
            event.reason,
            metadata["namespace"],
            metadata["name"],
            event.message,
        )
    post_events(kube, connector, plan.action_events)
    written = plan.status is not None
    if plan.status is not None:
        write_status(kube, connector, plan.status)
    post_events(kube, connector, plan.transition_events)
    return written


def write_status(kube: Kube, connector: dict[str, Any], status: ConnectorStatus) -> None:
    metadata = connector["metadata"]
    kube.apply(
        {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": KIND,
            "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
            "status": status.to_api(),
        },
        subresource="status",
    )
    ready = find(status.conditions, ConditionType.READY)
    log.info(
        "Updated status of Connector %s/%s: Ready=%s (%s)",
        metadata["namespace"],
        metadata["name"],
        ready.status if ready else "?",
        ready.reason if ready else "?",
    )


def post_events(kube: Kube, connector: dict[str, Any], events: Iterable[Event]) -> None:
    """Best effort: an Event that cannot be posted is logged (by ``Kube``), never raised."""
    for event in events:
        kube.post_event(connector, event.type, event.reason, event.message)
