"""Scripted misbehaviour of the Coder stand-in's agent routes, for tests and `/dev/faults`.

Faults are consumed in list order: "503 twice, then normal service" is one Fault with `times=2`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from standins.coder.gowire import coder_error
from standins.http import Response

FAULT_ROUTES = ("app-status", "log-snapshot")


@dataclass
class Fault:
    """A scripted misbehaviour of one agent route.

    The next `times` requests to `route` wait `delay` seconds, then answer `status` (with a
    `Retry-After: retry_after` header when set) instead of being served; a `status` of None
    serves them normally after the delay (a slow server). Faults are consumed in list order.
    """

    route: str
    status: int | None = 503
    times: int = 1
    retry_after: int | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.route not in FAULT_ROUTES:
            raise ValueError(f"route must be one of {', '.join(FAULT_ROUTES)}")
        if self.status is not None and not 200 <= self.status <= 599:
            raise ValueError("status must be an HTTP status from 200 to 599, or null")
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if self.delay < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("delay and retry_after must not be negative")


def take_fault(faults: list[Fault], route: str) -> Fault | None:
    """The first fault for `route`, counted down (and removed when used up), or None."""
    for fault in faults:
        if fault.route == route and fault.times > 0:
            fault.times -= 1
            if fault.times == 0:
                faults.remove(fault)
            return fault
    return None


def fault_answer(fault: Fault) -> Response:
    """What a fault with a status answers instead of the route."""
    headers = [] if fault.retry_after is None else [("retry-after", str(fault.retry_after))]
    if fault.status == 204:
        return Response(status=204, headers=headers)
    return coder_error(
        fault.status or 503,
        "Injected fault.",
        f"A /dev/faults entry answered {fault.status} ({fault.times} more to come).",
        headers=headers,
    )


def fault_from_json(item: dict[str, Any]) -> Fault:
    """A Fault from one `/dev/faults` entry; TypeError or ValueError saying what is wrong."""
    unknown = set(item) - {"route", "status", "retry_after", "delay", "times"}
    if unknown:
        raise ValueError(f"unknown fault keys: {', '.join(sorted(unknown))}")
    route, status = item.get("route"), item.get("status", 503)
    times, retry_after, delay = item.get("times", 1), item.get("retry_after"), item.get("delay", 0)
    if not isinstance(route, str):
        raise TypeError("route must be a string")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise TypeError("status must be an integer or null")
    if not isinstance(times, int) or isinstance(times, bool):
        raise TypeError("times must be an integer")
    if retry_after is not None and (
        not isinstance(retry_after, int) or isinstance(retry_after, bool)
    ):
        raise TypeError("retry_after must be whole seconds or null")
    if not isinstance(delay, (int, float)) or isinstance(delay, bool):
        raise TypeError("delay must be a number of seconds")
    return Fault(route, status, times, retry_after, float(delay))
