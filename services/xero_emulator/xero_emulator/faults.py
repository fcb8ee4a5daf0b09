"""Fault injection, set per test: server errors at a rate, latency, connections dropped after the
write committed (the case that duplicates objects in naive clients), and 429 storms.
Draws come from a seeded generator so a run is repeatable."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

FAULT_KINDS = ("error", "latency", "drop_after_commit", "rate_limit", "garble_after_commit")
WRITE_METHODS = ("PUT", "POST", "DELETE")


@dataclass
class FaultRule:
    kind: str
    rate: float = 1.0  # probability that a matching call is hit
    count: int | None = None  # stop after hitting this many calls; None = no limit
    status: int = 503  # for "error"
    seconds: float = 0.0  # for "latency"
    retry_after: int = 1  # for "rate_limit"
    problem: str = "minute"  # X-Rate-Limit-Problem for "rate_limit"
    methods: tuple[str, ...] | None = None  # None: writes for drop_after_commit, any method otherwise
    path_contains: str | None = None
    tenant_id: str | None = None
    hits: int = field(default=0)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if self.kind == "error" and not 500 <= self.status <= 599:
            raise ValueError("an error fault's status must be 5xx")
        if self.methods is not None:
            self.methods = tuple(m.upper() for m in self.methods)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        allowed = {
            "kind",
            "rate",
            "count",
            "status",
            "seconds",
            "retry_after",
            "problem",
            "methods",
            "path_contains",
            "tenant_id",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        values = dict(data)
        if not isinstance(values.get("kind"), str):
            raise ValueError(f"kind is required: one of {', '.join(FAULT_KINDS)}")
        for name, kind in (("rate", float), ("seconds", float), ("count", int), ("status", int), ("retry_after", int)):
            value = values.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
                raise ValueError(f"{name} must be a number")
            values[name] = kind(value)
        methods = values.get("methods")
        if methods is not None:
            if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
                raise ValueError("methods must be a list of HTTP methods")
            values["methods"] = tuple(methods)
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["methods"] = list(self.methods) if self.methods is not None else None
        return data

    def applies(self, method: str, path: str, tenant_id: str | None, identity: bool = False) -> bool:
        # Identity calls (the token endpoint) are hit only by rules that name their path.
        if identity and not self.path_contains:
            return False
        after_commit = self.kind in ("drop_after_commit", "garble_after_commit")
        methods = self.methods or (WRITE_METHODS if after_commit else None)
        if methods is not None and method not in methods:
            return False
        if self.path_contains and self.path_contains.lower() not in path.lower():
            return False
        if self.tenant_id and self.tenant_id != tenant_id:
            return False
        return self.count is None or self.hits < self.count


@dataclass(frozen=True)
class FaultPlan:
    """What to do to one call: sleep first, refuse with a status, or drop or garble the answer
    after committing (a proxy that mangles a 200 is the case clients most often fail to survive)."""

    latency: float = 0.0
    error: FaultRule | None = None
    rate_limit: FaultRule | None = None
    drop_after_commit: bool = False
    garble_after_commit: bool = False


class Faults:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def set(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = list(rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def plan(self, method: str, path: str, tenant_id: str | None, identity: bool = False) -> FaultPlan:
        latency = 0.0
        error = rate_limit = None
        drop = garble = False
        with self._lock:
            for rule in self._rules:
                if not rule.applies(method, path, tenant_id, identity) or self._random.random() >= rule.rate:
                    continue
                rule.hits += 1
                if rule.kind == "latency":
                    latency += rule.seconds
                elif rule.kind == "error" and error is None:
                    error = rule
                elif rule.kind == "rate_limit" and rate_limit is None:
                    rate_limit = rule
                elif rule.kind == "drop_after_commit":
                    drop = True
                elif rule.kind == "garble_after_commit":
                    garble = True
        return FaultPlan(latency, error, rate_limit, drop, garble)
