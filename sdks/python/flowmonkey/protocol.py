"""The worker side of the contract: subject, stream, consumer and bucket names, and the
TaskResult a worker publishes. Mirrors shared/src/protocol (names.ts, subjects.ts,
messages/task-result.ts); the JSON Schemas in schemas/ are the reference."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

PRIORITIES = ("high", "normal", "low")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# The TaskResult schema's limits: a longer field would make the whole result undecodable.
MAX_CODE = 128
MAX_MESSAGE = 16_384


@dataclass(frozen=True)
class Names:
    """Subjects, streams, consumers and buckets of one mesh prefix (default `fm`)."""

    prefix: str = "fm"

    @property
    def tasks_stream(self) -> str:
        return self.prefix.upper().replace("-", "_") + "_TASKS"

    def bucket(self, name: str) -> str:
        return f"{self.prefix.lower().replace('-', '_')}_{name}"

    def blobs_bucket(self, region: str) -> str:
        """A region's blob bucket (<prefix>_blobs_<region>): its offloaded contexts and large checkpoints."""
        return self.bucket(f"blobs_{region}")

    def task_subject(self, region: str, handler: str, priority: str, capabilities: tuple[str, ...] = ()) -> str:
        """A pool's task subject: the handler's plain pool, or the pool of exactly `capabilities`."""
        return f"{self.prefix}.tasks.{region}.{pool_token(handler, capabilities)}.{priority}"

    def results_subject(self, region: str) -> str:
        return f"{self.prefix}.results.{region}"

    def execution_ended_subject(self, how: str) -> str:
        """Every execution's `cancelled` or `failed` event: <prefix>.exec.<flowId>.<executionId>.<how>."""
        return f"{self.prefix}.exec.*.*.{how}"

    def event_subject(self, region: str, name: str) -> str:
        """A region's worker's event: <prefix>.events.~<region>.<name> (it may resume only that region's waits)."""
        return f"{self.prefix}.events.~{region}.{name}"

    def progress_subject(self, region: str, execution_id: str, step_id: str) -> str:
        """A region's worker's progress: <prefix>.progress.~<region>.<executionId>.<stepId>."""
        return f"{self.prefix}.progress.~{region}.{execution_id}.{step_id}"

    @staticmethod
    def pool_consumer(region: str, handler: str, priority: str, capabilities: tuple[str, ...] = ()) -> str:
        """The durable consumer every worker of a (region, handler[, capabilities], priority) pool shares."""
        return f"pool_{region}_{pool_token(handler, capabilities)}_{priority}"


def canonical_capabilities(capabilities: "Iterable[str]") -> tuple[str, ...]:
    """Sorted and without duplicates, as the TypeScript side writes them; each must be a token."""
    caps = tuple(sorted(set(capabilities)))
    for cap in caps:
        if not TOKEN.match(cap):
            raise ValueError(f"invalid capability {cap!r}: letters, digits, - and _ only")
    return caps


def pool_token(handler: str, capabilities: "Iterable[str]" = ()) -> str:
    """`handler`, or `handler~cap1~cap2` for the pool of the workers with exactly those capabilities."""
    return "~".join((handler, *canonical_capabilities(capabilities)))


class TaskError(ValueError):
    """A task message that does not follow the contract."""


def read_task(body: Any) -> dict[str, Any]:
    """The fields of a Task a worker relies on, checked; anything else is passed through."""
    if not isinstance(body, dict):
        raise TaskError("a task is a JSON object")
    for field in ("taskId", "executionId", "stepId"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise TaskError(f"task.{field} must be a non-empty string")
    attempt = body.get("attempt")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise TaskError("task.attempt must be an integer >= 1")
    handler = body.get("handler")
    if not isinstance(handler, dict) or not isinstance(handler.get("type"), str) or not TOKEN.match(handler["type"]):
        raise TaskError("task.handler.type must be a token")
    config = body.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("timeoutMs"), int) or config["timeoutMs"] <= 0:
        raise TaskError("task.config.timeoutMs must be a positive integer")
    return body


def parse_iso(value: Any) -> float:
    """Epoch seconds of an ISO-8601 timestamp such as the mesh writes ("…Z"); ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def iso(ts: float) -> str:
    """Epoch seconds → the ISO-8601 UTC timestamp the contract uses (millisecond precision)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def failure(code: str, message: str, retryable: bool, retry_after_ms: int | None = None) -> dict[str, Any]:
    code = code[:MAX_CODE] or "HANDLER_FAILED"
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    out: dict[str, Any] = {"code": code, "message": message, "retryable": retryable}
    if retry_after_ms is not None and retry_after_ms >= 0:
        out["retryAfterMs"] = int(retry_after_ms)
    return out


def result(task: dict[str, Any], outcome: str, *, worker_id: str, region: str, started: float, completed: float,
           output: Any = None, fail: dict[str, Any] | None = None) -> dict[str, Any]:
    """A TaskResult for `fm.results.<region>`: `success` carries output; `failure` / `error` a Failure."""
    body: dict[str, Any] = {
        "taskId": task["taskId"],
        "executionId": task["executionId"],
        "stepId": task["stepId"],
        "attempt": task["attempt"],
        "outcome": outcome,
        "metrics": {
            "startedAt": iso(started),
            "completedAt": iso(completed),
            "durationMs": max(0.0, (completed - started) * 1000),
            "workerId": worker_id,
            "region": region,
        },
    }
    if outcome == "success":
        body["output"] = output
    elif outcome == "wait":
        body["wait"] = output
    else:
        body["failure"] = fail
    return body
