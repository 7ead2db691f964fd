"""What the sandbox's fake external systems remember: resources, calls, idempotency keys, faults.

Each system (crm, warehouse, erp, risk, sms) is a tiny REST store behaving like the real kind:
``POST <collection>`` creates a resource with a new id, ``PUT <path>`` creates or replaces the
resource at that path (its id stays), ``PATCH <path>`` updates an existing one (404 otherwise),
``DELETE <path>`` removes it. Every write must carry an ``Idempotency-Key``; a repeated key is
answered with the first answer and does nothing again (Stripe's semantics), and is counted, so a
test can tell a retried call from a repeated effect.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

SYSTEMS = ("crm", "warehouse", "erp", "risk", "sms")


@dataclass
class Faults:
    """What a system does wrong on purpose. Rates are shares of calls (0.3 = 30 %)."""

    fail_rate: float = 0.0  # answer 503 (with Retry-After when retry_after_s is set)
    timeout_rate: float = 0.0  # answer only after hang_ms (longer than a client's timeout)
    slow_ms: int = 0  # every answer waits this long
    refuse: bool = False  # answer every write 422: a permanent refusal
    retry_after_s: int | None = None
    hang_ms: int = 30_000
    timeout_next: int = 0  # the next this many writes time out whatever the dice say (tests that need one)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Faults:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault setting(s) {sorted(unknown)}; known: {sorted(known)}")
        faults = cls(**data)
        for name in ("fail_rate", "timeout_rate"):
            if not 0 <= getattr(faults, name) <= 1:
                raise ValueError(f"{name} is a share between 0 and 1")
        return faults


@dataclass(frozen=True)
class Call:
    system: str
    method: str
    path: str
    idempotency_key: str | None
    body: Any
    status: int
    replayed: bool
    fault: str | None
    at: float


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class System:
    name: str
    faults: Faults = field(default_factory=Faults)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: dict[str, tuple[str, Answer]] = field(default_factory=dict)  # key → (request fingerprint, answer)
    next_id: int = 1

    def write(self, method: str, path: str, body: dict[str, Any]) -> Answer:
        path = "/" + path.strip("/")
        if method == "POST":
            resource_id = f"{self.name}_{self.next_id}"
            self.next_id += 1
            resource = {"id": resource_id, **body}
            self.resources[f"{path}/{resource_id}"] = resource
            return Answer(201, resource)
        if method == "PUT":
            existing = self.resources.get(path)
            resource_id = existing["id"] if existing else f"{self.name}_{self.next_id}"
            if existing is None:
                self.next_id += 1
            resource = {"id": resource_id, **body}
            self.resources[path] = resource
            return Answer(200 if existing else 201, resource)
        if path not in self.resources:
            return Answer(404, {"error": "not_found", "detail": f"no {self.name} resource at {path}"})
        if method == "PATCH":
            self.resources[path] = {**self.resources[path], **body, "id": self.resources[path]["id"]}
            return Answer(200, self.resources[path])
        removed = self.resources.pop(path)
        return Answer(200, removed)


class Sandbox:
    """Every system's state and the call log; the HTTP and SMTP servers share one instance."""

    def __init__(self, seed: int | None = None) -> None:
        self.random = random.Random(seed)
        self.systems = {name: System(name) for name in SYSTEMS}
        self.smtp_faults = Faults()
        self.calls: list[Call] = []
        self.emails: list[dict[str, Any]] = []
        self.refused_emails = 0
        self.smtp_connections = 0

    def reset(self) -> None:
        self.systems = {name: System(name) for name in SYSTEMS}
        self.smtp_faults = Faults()
        self.calls.clear()
        self.emails.clear()
        self.refused_emails = 0
        self.smtp_connections = 0

    def fault_for(self, system: System | None) -> str | None:
        """The fault to play for one call (``None``: the SMTP server)."""
        f = self.smtp_faults if system is None else system.faults
        if f.refuse:
            return "refuse"
        if f.timeout_next > 0:
            f.timeout_next -= 1
            return "timeout"
        roll = self.random.random()
        if roll < f.fail_rate:
            return "fail"
        if roll < f.fail_rate + f.timeout_rate:
            return "timeout"
        return None

    def handle(self, system: System, method: str, path: str, key: str | None, body: Any, fault: str | None) -> Answer:
        """The answer to a write, after any injected fault was decided (``fault``)."""
        answer, replayed = self._answer(system, method, path, key, body, fault)
        self.calls.append(Call(system.name, method, path, key, body, answer.status, replayed, fault, time.time()))
        return answer

    def _answer(
        self, system: System, method: str, path: str, key: str | None, body: Any, fault: str | None
    ) -> tuple[Answer, bool]:
        if not key:
            return Answer(400, {"error": "idempotency_key_missing", "detail": "send an Idempotency-Key header"}), False
        fingerprint = f"{method} {path} {json.dumps(body, sort_keys=True)}"
        if key in system.answers:
            first, answer = system.answers[key]
            if first != fingerprint:
                detail = f"Idempotency-Key {key} was first used for another request ({first[:80]})"
                return Answer(422, {"error": "idempotency_key_reused", "detail": detail}), False
            return Answer(answer.status, answer.body, {"Idempotent-Replayed": "true"}), True
        if fault == "refuse":
            return Answer(
                422, {"error": "refused", "detail": f"{system.name} refuses this request (sandbox fault)"}
            ), False
        if fault == "fail":
            retry = system.faults.retry_after_s
            return Answer(503, {"error": "unavailable"}, {"Retry-After": str(retry)} if retry else {}), False
        if not isinstance(body, dict):
            return Answer(400, {"error": "invalid_body", "detail": "send a JSON object"}), False
        answer = system.write(method, path, body)
        if answer.status < 500:
            system.answers[key] = (fingerprint, answer)  # Stripe keeps 4xx answers too; 5xx may be retried
        return answer, False

    def summary(self) -> dict[str, Any]:
        """Per system: calls, effects (first-time writes that succeeded), replays; and the emails."""
        out: dict[str, Any] = {}
        for name in SYSTEMS:
            calls = [c for c in self.calls if c.system == name]
            out[name] = {
                "calls": len(calls),
                "effects": sum(1 for c in calls if 200 <= c.status < 300 and not c.replayed),
                "replayed": sum(1 for c in calls if c.replayed),
                "faults": sum(1 for c in calls if c.fault),
            }
        message_ids = [e["message_id"] for e in self.emails]
        out["email"] = {
            "messages": len(self.emails),
            "duplicates": len(message_ids) - len(set(message_ids)),
            "refused": self.refused_emails,
            "connections": self.smtp_connections,
        }
        return out

    def effects(self, system: str | None = None) -> list[dict[str, Any]]:
        return [
            asdict(c)
            for c in self.calls
            if (system is None or c.system == system) and 200 <= c.status < 300 and not c.replayed
        ]
