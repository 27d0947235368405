"""Describe a Ray actor or task that waits to be placed: its state, its resource
request and what the cluster has, for the warnings and errors of the RAY
initializer and trainer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

log = logging.getLogger(__name__)

# Ray's names for the resources that num_cpus, num_gpus and memory reserve.
_STANDARD_NAMES: Final = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}
# A training that Ray has not started after PENDING_WARNING_SECONDS gets a
# warning, repeated every PENDING_WARNING_INTERVAL_SECONDS while it waits.
PENDING_WARNING_SECONDS: Final = 5.0
PENDING_WARNING_INTERVAL_SECONDS: Final = 60.0


class WarningSchedule:
    """Times of the warnings about work that waits to start: the first one
    ``first_seconds`` after ``since`` (a ``time.monotonic()`` value), then one
    every ``interval_seconds``."""

    def __init__(
        self,
        since: float,
        first_seconds: float = PENDING_WARNING_SECONDS,
        interval_seconds: float = PENDING_WARNING_INTERVAL_SECONDS,
    ) -> None:
        self.since = since
        self.warned = False
        self._interval = interval_seconds
        self._next = since + first_seconds

    def due(self, now: float) -> bool:
        """Tell whether a warning is due at ``now``, and if so schedule the next."""
        if now < self._next:
            return False
        self.warned = True
        self._next = now + self._interval
        return True


def requested_resources(options: Mapping[str, Any]) -> dict[str, float]:
    """Return the nonzero resources of actor ``options`` under Ray's names
    (``CPU``, ``GPU``, ``memory`` and the custom resources)."""
    requested: dict[str, float] = {}
    for option, name in _STANDARD_NAMES.items():
        amount = options.get(option)
        if amount:
            requested[name] = float(amount)
    for name, amount in dict(options.get("resources") or {}).items():
        if amount:
            requested[str(name)] = float(amount)
    return requested


def actor_state(ray: Any, actor: Any) -> str:
    """Return Ray's state of ``actor`` (such as ``PENDING_CREATION``), or
    ``"unknown"`` when the cluster's actor table cannot be read."""
    # NOTE: private Ray API (2.60). The public ray.util.state.get_actor needs
    # the dashboard, which a cluster started with include_dashboard=False lacks.
    try:
        table = ray._private.state.actors(actor._actor_id.hex())
        return str(table.get("State") or "unknown")
    except Exception as exc:  # noqa: BLE001 - the state only improves a message
        log.debug("Cannot read the state of Ray actor %r: %s", actor, exc)
        return "unknown"


def describe_resources(
    ray: Any, requested: Mapping[str, float], what: str = "actor"
) -> str:
    """Describe ``requested`` against the cluster's free and total resources.

    Names the resources that no live node has enough of, because such an actor
    (or task, as ``what`` names it) cannot start until a node that has them joins
    the cluster.
    """
    if not requested:
        return "It requests no resources, so it may be waiting for its runtime_env."
    available = _read_resources(ray.available_resources)
    total = _read_resources(ray.cluster_resources)
    parts = [
        f"{name} {_number(available.get(name, 0.0))} of "
        f"{_number(total.get(name, 0.0))}"
        for name in requested
    ]
    text = f"{describe_request(requested)} Free in the cluster now: {', '.join(parts)}."
    nodes = _live_node_resources(ray)
    if nodes is not None and not any(_fits(node, requested) for node in nodes):
        missing = [
            name
            for name, amount in requested.items()
            if all(node.get(name, 0.0) < amount for node in nodes)
        ]
        lacking = " or ".join(missing) or "all of them at once"
        return (
            f"{text} No live node has {lacking} in that amount, so the {what} "
            "cannot start until such a node joins the cluster."
        )
    if all(available.get(name, 0.0) >= amount for name, amount in requested.items()):
        return (
            f"{text} The cluster has these resources free, so the {what} may be "
            "waiting for its runtime_env to be set up or for a worker to start."
        )
    return f"{text} Other tasks and actors hold the resources it needs."


def describe_request(requested: Mapping[str, float]) -> str:
    """Describe ``requested`` without the cluster's resources."""
    if not requested:
        return "It requests no resources."
    return f"It requests {_format(requested)}."


def _live_node_resources(ray: Any) -> list[dict[str, float]] | None:
    """Return the total resources of each live node, or ``None`` if unknown."""
    try:
        return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]
    except Exception as exc:  # noqa: BLE001 - the nodes only improve a message
        log.debug("Cannot list the nodes of the Ray cluster: %s", exc)
        return None


def _fits(node: Mapping[str, float], requested: Mapping[str, float]) -> bool:
    return all(node.get(name, 0.0) >= amount for name, amount in requested.items())


def _read_resources(reader: Any) -> dict[str, float]:
    try:
        return {str(name): float(amount) for name, amount in reader().items()}
    except Exception as exc:  # noqa: BLE001 - the resources only improve a message
        log.debug("Cannot read the resources of the Ray cluster: %s", exc)
        return {}


def _format(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {_number(amount)}" for name, amount in resources.items())


def _number(amount: float) -> str:
    # Whole amounts in full: memory is a number of bytes.
    return str(int(amount)) if amount.is_integer() else f"{amount:g}"
