"""Handlers and what they see: define_handler, the run's Context, typed failures."""

from __future__ import annotations

import gzip
import inspect
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Union

from .context import ContextError, ExecutionContext, context_of, gunzip_json
from .protocol import Names, iso
from .secrets import Secrets


class RetryableFailure(Exception):
    """The handler failed in a way a later attempt may not (the step's retry policy decides)."""

    retryable = True

    def __init__(self, code: str, message: str, retry_after_ms: Optional[int] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


class NonRetryableFailure(RetryableFailure):
    """The handler failed for good: no retry will help (bad input, a refusal)."""

    retryable = False

    def __init__(self, code: str, message: str):
        super().__init__(code, message)


HandlerFn = Callable[["Context"], Union[Any, Awaitable[Any]]]


@dataclass(frozen=True)
class Wait:
    """Returned by a handler (`return ctx.wait(...)`): park the step until its token is resumed,
    a matching event arrives, or `wait_until` passes; the step then runs again with `ctx.resume`."""

    request: dict[str, Any]


class PauseSignal(Exception):
    """Raised by `ctx.pause`: the run ends with its step waiting. Do not catch it in a handler."""

    def __init__(self, wait: "Wait"):
        super().__init__(f"paused: {wait.request.get('reason', 'waiting')}")
        self.wait = wait


@dataclass(frozen=True)
class Handler:
    type: str
    run: HandlerFn
    version: Optional[str] = None


def define_handler(type: str, run: HandlerFn, version: Optional[str] = None) -> Handler:
    """A handler for tasks of `type`: `run(ctx)` returns the step's output (any JSON), or raises."""
    return Handler(type=type, run=run, version=version)


@dataclass
class Context:
    """What one run of a handler sees: its input and task, progress, a logger bound to its ids."""

    task: dict[str, Any]
    _nc: Any
    _progress_kv: Any
    _names: Names
    _checkpoint_kv: Any = None
    _heartbeat: Any = None
    _js: Any = None
    # Read and write blobs of the region's fm_blobs_<region> (an offloaded context, a large checkpoint), given by the worker.
    _fetch_blob: Any = None
    _put_blob: Any = None
    # The task's vault secrets, opened by the worker before the handler runs.
    secrets: Secrets = field(default_factory=Secrets)
    # The worker's region: the checkpoint and progress keys start with it (the permissions
    # grant a region's workers its keys only). Empty: the region the task was sent to.
    _region: str = ""
    log: logging.LoggerAdapter = field(init=False)
    context: ExecutionContext = field(init=False)

    def __post_init__(self) -> None:
        ids = {k: self.task[k] for k in ("executionId", "taskId", "stepId", "attempt")}
        self.log = logging.LoggerAdapter(logging.getLogger("flowmonkey.handler"), ids)
        self.context = context_of(self.task, self._fetch_blob or _no_blobs)

    @property
    def input(self) -> Any:
        return self.task.get("input")

    @property
    def attempt(self) -> int:
        return self.task["attempt"]

    @property
    def resume(self) -> Optional[dict[str, Any]]:
        """On the run after a wait: why it runs again ({reason, payload?, event?, waitedMs})."""
        return self.task.get("resume")

    def wait(self, resume_token: str, *, event: Optional[str] = None, filter: Optional[str] = None,
             wait_until: Optional[str] = None, reason: Optional[str] = None) -> Wait:
        """Park this step without holding a worker (return the result): resumed by its token
        (`flowmonkey resume <token>`), by an event named `event` (matching `filter`, JSONata),
        or timed out at `wait_until` (ISO-8601)."""
        request: dict[str, Any] = {"resumeToken": resume_token}
        if event is not None:
            request["resumeOn"] = {"event": event, **({"filter": filter} if filter is not None else {})}
        if wait_until is not None:
            request["waitUntil"] = wait_until
        if reason is not None:
            request["reason"] = reason[:512]
        return Wait(request)

    async def pause(self, reason: str, *, state: Any = None, max_wait_ms: Optional[int] = None, event: Optional[str] = None,
                    filter: Optional[str] = None, resume_token: Optional[str] = None) -> None:
        """
        Frees this worker slot until the step is resumed (its token, a matching `event`, or
        `max_wait_ms` passing): saves `state` as the checkpoint when given, then ends this run by
        raising PauseSignal (do not catch it). When resumed the handler runs again:
        `load_checkpoint()` returns the state and `ctx.resume` says why.
        """
        if state is not None:
            await self.save_checkpoint(state)
        request: dict[str, Any] = {"resumeToken": resume_token or f"wt_{uuid.uuid4()}", "reason": reason[:512]}
        if max_wait_ms is not None:
            request["waitUntil"] = iso(time.time() + max_wait_ms / 1000)
        if event is not None:
            request["resumeOn"] = {"event": event, **({"filter": filter} if filter is not None else {})}
        raise PauseSignal(Wait(request))

    async def emit(self, name: str, data: Any = None) -> None:
        """
        Publishes an event on `fm.events.~<region>.<name>` (stream FM_EVENTS): it may resume steps
        waiting for it that parked in this worker's region.
        """
        body = {"data": data, "executionId": self.task["executionId"], "stepId": self.task["stepId"], "at": iso(time.time())}
        await self._js.publish(self._names.event_subject(self._worker_region, name), json.dumps(body).encode())

    async def progress(self, percent: float, message: Optional[str] = None) -> None:
        """Publishes the step's progress on `fm.progress.<executionId>.<stepId>` and keeps the latest in KV."""
        body: dict[str, Any] = {
            "executionId": self.task["executionId"],
            "stepId": self.task["stepId"],
            "taskId": self.task["taskId"],
            "attempt": self.task["attempt"],
            "percent": max(0.0, min(100.0, float(percent))),
            "at": iso(time.time()),
        }
        if message is not None:
            body["message"] = message[:1024]
        data = json.dumps(body).encode()
        await self._nc.publish(self._names.progress_subject(self._worker_region, self.task["executionId"], self.task["stepId"]), data)
        if self._progress_kv is not None:
            try:
                await self._progress_kv.put(self._step_key(self.task["stepId"]), data)
            except Exception:  # noqa: BLE001 - progress is informational: live updates still flowed
                logging.getLogger("flowmonkey.worker").debug("progress bucket write failed", exc_info=True)


    @property
    def _worker_region(self) -> str:
        return self._region or self.task["metadata"]["region"]

    def _step_key(self, slot: str) -> str:
        """`<region>.<executionId>.<slot>`, the key layout of fm_checkpoints and fm_progress."""
        return f"{self._worker_region}.{self.task['executionId']}.{slot}"

    @property
    def _checkpoint_slot(self) -> str:
        # A map item keeps its own checkpoint: the step's items run side by side.
        item = self.task.get("item")
        return f"{self.task['stepId']}.item-{item['run']}-{item['index']}" if isinstance(item, dict) else self.task["stepId"]

    @property
    def _checkpoint_key(self) -> str:
        return self._step_key(self._checkpoint_slot)

    async def save_checkpoint(self, state: Any) -> None:
        """
        Saves the step's checkpoint (KV fm_checkpoints, envelope {"state": ...}): a later attempt
        or a redelivery after a crash loads it. Counts as a heartbeat. Over 1 MiB, as the
        TypeScript worker does, the state goes gzip'd to the blob store (`checkpoints/<key>`) and
        the KV entry says where ({"blob", "bytes"}).
        """
        if self._checkpoint_kv is None:
            raise RetryableFailure("UNAVAILABLE", "the checkpoint bucket is not open on this worker")
        data = json.dumps({"state": state}).encode()
        if len(data) <= INLINE_CHECKPOINT_MAX_BYTES:
            await self._checkpoint_kv.put(self._checkpoint_key, data)
        else:
            if self._put_blob is None:
                raise NonRetryableFailure("PAYLOAD_TOO_LARGE", f"checkpoint of {len(data)} bytes and no blob store on this worker")
            # Named as the TypeScript worker names it (no region: a blob is found through its entry).
            blob = f"checkpoints/{self.task['executionId']}.{self._checkpoint_slot}"
            await self._put_blob(blob, gzip.compress(data))
            await self._checkpoint_kv.put(self._checkpoint_key, json.dumps({"blob": blob, "bytes": len(data)}).encode())
        if self._heartbeat is not None:
            await self._heartbeat()

    async def load_checkpoint(self) -> Any:
        """The step's last saved checkpoint, or None."""
        if self._checkpoint_kv is None:
            raise RetryableFailure("UNAVAILABLE", "the checkpoint bucket is not open on this worker")
        try:
            entry = await self._checkpoint_kv.get(self._checkpoint_key)
        except Exception:  # noqa: BLE001 - nats-py raises KeyNotFoundError for a missing or deleted key
            return None
        if entry is None or not entry.value:
            return None
        envelope = json.loads(entry.value)
        if "state" in envelope:
            return envelope["state"]
        data = await (self._fetch_blob or _no_blobs)(envelope["blob"])
        if data is None:
            raise NonRetryableFailure("INTERNAL", f"checkpoint {self._checkpoint_key} points at blob {envelope['blob']}, which is gone")
        return gunzip_json(data, int(envelope["bytes"]), f"checkpoint {self._checkpoint_key}")["state"]


async def _no_blobs(name: str) -> None:
    raise ContextError(f"no blob bucket on this worker to read {name} from")


# The checkpoint envelope's inline limit, as the TypeScript worker's (worker/src/plumbing/checkpoints.ts).
INLINE_CHECKPOINT_MAX_BYTES = 1024 * 1024


async def call_handler(handler: Handler, ctx: Context) -> Any:
    value = handler.run(ctx)
    return await value if inspect.isawaitable(value) else value
