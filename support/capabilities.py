"""What a backend may lack: the capability names a profile's ``lacks`` uses and the ``@uses.NAME`` tags name."""

from __future__ import annotations

import re

#: Capability → what it is (docs/backend-authors.md's profile section lists the same).
CAPABILITIES: dict[str, str] = {
    "sync_data_load": "a synchronous data load (POST /api/v1/data/load)",
    "async_data_load": "an asynchronous data load and its operation (POST /api/v1/data/load?async_mode=true, "
                       "GET /api/v1/operations/{id})",
    "operation_cancel": "cancelling an operation (DELETE /api/v1/operations/{id}, the CLI's Ctrl-C)",
    "cached_data": "reading cached bars back (GET /api/v1/data/{symbol}/{timeframe}, the CLI's 'data show')",
    "api_cleanup": "closing every pooled connection on request (POST /api/v1/ib/cleanup)",
    "cli_cleanup": "the CLI's 'ib cleanup' command",
    "resilience_report": "the resilience report and its score and phases (GET /api/v1/ib/resilience)",
    "health_check_loop": "a health-check loop that runs every health interval and drops dead connections",
    "idle_gc": "closing connections idle longer than an idle timeout",
}

#: A fact of the target profile that can be declared absent (``= "none"``) → the capability it then lacks.
ABSENT_FACTS: dict[str, str] = {"health_check_interval_s": "health_check_loop", "idle_timeout_s": "idle_gc"}

#: The words that declare a fact absent.
ABSENT = ("none", "absent")

#: Step texts that need a capability: a scenario with such a step carries ``@uses.NAME`` (tests/spec checks it).
STEPS: dict[str, tuple[str, ...]] = {
    "sync_data_load": (r'load(?:s|ed)? "[^"]+" .*bars from IB',),
    "async_data_load": (r"asynchronous load", r"\bthe operation\b"),
    "operation_cancel": (r"presses Ctrl-C", r"ends up cancelled"),
    "cached_data": (r"\bcached\b.*\bbars?\b", r'"data show'),
    "api_cleanup": (r"cleans up its IB connections", r"clean up the pool", r"the cleanup reports"),
    "cli_cleanup": (r'"ib cleanup',),
    "resilience_report": (r"resilience (report|score|phase)", r"the report states", r"the score", r"client-ID phase",
                          r"garbage collection working", r"pool has let go of the dropped"),
    "health_check_loop": (r"within two health intervals", r"health-check interval", r"pool has let go of the dropped"),
    "idle_gc": (r"idle timeout",),
}

#: A missing route → the capabilities it takes away (a later scenario needing one of them is not judged again).
ROUTES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("POST", r"^/data/load\?(?:.*&)?async_mode=true(?:&|$)", ("async_data_load",)),
    ("POST", r"^/data/load(?:\?|$)", ("sync_data_load",)),   # a load without async_mode=true is synchronous
    ("GET", r"^/operations/[^/]+$", ("async_data_load",)),
    ("DELETE", r"^/operations/[^/]+$", ("operation_cancel",)),
    ("GET", r"^/data/[^/]+/[^/]+$", ("cached_data",)),
    ("POST", r"^/ib/cleanup$", ("api_cleanup",)),
    ("GET", r"^/ib/resilience$", ("resilience_report",)),
)


#: A field an answer lacks → the capabilities it takes away (the others stay a failure of each scenario judging them).
FIELDS: dict[str, tuple[str, ...]] = {
    "overall_resilience_score": ("resilience_report",),
    "phase_2_garbage_collection.health_check_interval": ("health_check_loop",),
    "phase_2_garbage_collection.max_idle_time_seconds": ("idle_gc",),
}


def needed_by(step_text: str) -> set[str]:
    """The capabilities a step of this text needs."""
    return {name for name, patterns in STEPS.items() if any(re.search(p, step_text) for p in patterns)}


def taken_by_route(method: str, path: str) -> tuple[str, ...]:
    """The capabilities a backend lacks when it has no ``method path`` (a path below ``/api/v1``)."""
    for want, pattern, names in ROUTES:
        if method == want and re.match(pattern, path if "?" in pattern else path.split("?")[0]):
            return names
    return ()


def tag_of(name: str) -> str:
    """The scenario tag of a capability."""
    return f"uses.{name}"
