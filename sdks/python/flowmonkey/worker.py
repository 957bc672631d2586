"""A worker: pulls tasks from its pools (high lane first), runs handlers with heartbeats,
publishes each result, then acks (docs/PROTOCOL.md, "Workers in other languages")."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import socket
import time
import uuid
from typing import Any, Iterable, Optional

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectDeletedError, ObjectNotFoundError

from . import protocol
from .secrets import VaultError, VaultKeys, open_task_secrets
from .handler import Context, Handler, PauseSignal, RetryableFailure, Wait, call_handler
from .protocol import PRIORITIES, Names

log = logging.getLogger("flowmonkey.worker")
VERSION = "0.1.0-python"
# How long a lane's standing pull waits before it is renewed.
PULL_WAIT_S = 2.0
REGISTRY_REFRESH_S = 10.0


class _SlotGate:
    """
    Lets pulled tasks start when a slot is free, high priority first. A slot handed to a waiter
    is reserved until it starts, so no other task takes it meanwhile; a waiting task heartbeats.
    """

    def __init__(self, running: Any, concurrency: int):
        self._running = running
        self._concurrency = concurrency
        self._reserved = 0
        self._waiting: dict[str, list[asyncio.Future[None]]] = {p: [] for p in PRIORITIES}

    def has_room(self) -> bool:
        return self._running() + self._reserved < self._concurrency

    async def enter(self, priority: str, msg: Any, beat_s: float) -> None:
        """Returns when the task may start; the caller starts it before its next await."""
        if self.has_room() and not any(self._waiting.values()):
            return
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[priority].append(ready)
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(ready), beat_s)
                self._reserved -= 1
                return
            except asyncio.TimeoutError:
                # Held, not started: keep it ours while it waits for a slot.
                await msg.in_progress()

    def release(self) -> None:
        """A slot freed: the highest-priority waiter gets it."""
        if not self.has_room():
            return
        for priority in PRIORITIES:
            if self._waiting[priority]:
                self._reserved += 1
                self._waiting[priority].pop(0).set_result(None)
                return


class Worker:
    """Runs `handlers` for tasks of `region`, at most `concurrency` at a time."""

    def __init__(
        self,
        handlers: Iterable[Handler],
        *,
        region: str,
        concurrency: int = 8,
        prefix: str = "fm",
        nats_url: str = "nats://127.0.0.1:4222",
        ack_wait_s: float = 60.0,
        connect_options: Optional[dict[str, Any]] = None,
        vault_keys: Optional[VaultKeys] = None,
        capabilities: Iterable[str] = (),
        hub_domain: Optional[str] = None,
    ):
        """`vault_keys`: the pool private keys that open tasks' sealed secrets (default: from
        FM_VAULT_PRIVATE_KEYS / FM_VAULT_PRIVATE_KEY). `capabilities` (gpu, ...): what this worker
        offers; it then also pulls, per handler, the pool of exactly that set, where the engine
        sends the steps that `require` them. `hub_domain`: the hub's JetStream domain, for a worker
        on a leaf region's server (its task pools and results are local; the buckets live at the hub)."""
        self.handlers = {h.type: h for h in handlers}
        if not self.handlers:
            raise ValueError("a worker needs at least one handler")
        if not protocol.REGION.match(region):
            raise ValueError(f"invalid region {region!r}")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.region = region
        self.concurrency = concurrency
        self.names = Names(prefix)
        self.nats_url = nats_url
        self.ack_wait_s = ack_wait_s
        self.connect_options = connect_options or {}
        self.capabilities = protocol.canonical_capabilities(capabilities)
        self.hub_domain = hub_domain
        self.worker_id = f"py-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.started_at = protocol.iso(time.time())
        self.nc: Any = None
        self.js: Any = None
        self._lanes: list[tuple[str, str, Any, float]] = []  # (handler, priority, subscription, heartbeat seconds)
        self._running: set[asyncio.Task[None]] = set()
        self._slot_free = asyncio.Event()
        self._gate = _SlotGate(lambda: len(self._running), concurrency)
        self._stopping = asyncio.Event()
        self._loop_task: Optional[asyncio.Task[None]] = None
        self._registry_task: Optional[asyncio.Task[None]] = None
        self._workers_kv: Any = None
        self._progress_kv: Any = None
        self._checkpoints_kv: Any = None
        self._blobs: Any = None
        # Handlers running here, by attempt: (executionId, dispatched at, the future that stops them).
        self._stops: dict[str, tuple[str, float, asyncio.Future[str]]] = {}
        self._attempts = Attempts()
        self.vault_keys = VaultKeys.from_env() if vault_keys is None else vault_keys

    async def start(self) -> None:
        self.nc = await nats.connect(servers=[self.nats_url], name=f"flowmonkey-worker-py {self.worker_id}", **self.connect_options)
        self.js = self.nc.jetstream()
        # The buckets (registry, progress, checkpoints, blobs) are the hub's; on a leaf, through its domain.
        self._buckets_js = self.nc.jetstream(domain=self.hub_domain) if self.hub_domain else self.js
        pools = [()] + ([self.capabilities] if self.capabilities else [])
        for handler in self.handlers:
            for caps in pools:
                for priority in PRIORITIES:
                    self._lanes.append(await self._open_lane(handler, priority, caps))
        self._workers_kv = await self._bucket("workers")
        self._progress_kv = await self._bucket("progress")
        self._checkpoints_kv = await self._bucket("checkpoints")
        await self._register()
        # An execution that ends while its steps run here (cancelled, or failed by another step):
        # its handlers are stopped and their slots freed, not left to run to an ignored result.
        for how in ("cancelled", "failed"):
            await self.nc.subscribe(self.names.execution_ended_subject(how), cb=self._on_execution_ended)
        self._registry_task = asyncio.create_task(self._refresh_registry())
        self._loop_task = asyncio.create_task(self._pull_loop())
        log.info("worker started", extra={"workerId": self.worker_id, "region": self.region, "handlers": list(self.handlers)})

    async def _open_lane(self, handler: str, priority: str, capabilities: tuple[str, ...] = ()) -> tuple[str, str, Any, float]:
        """Binds the pool's shared durable consumer, creating it as the TypeScript worker does when absent."""
        stream, durable = self.names.tasks_stream, Names.pool_consumer(self.region, handler, priority, capabilities)
        try:
            info = await self.js.consumer_info(stream, durable)
        except NotFoundError:
            info = await self.js.add_consumer(
                stream,
                # `name` as well as `durable_name`: nats-py then asks CONSUMER.CREATE.<stream>.<name>.<filter>,
                # which the shipped permissions grant per region; DURABLE.CREATE (any filter) they refuse.
                config=ConsumerConfig(
                    name=durable,
                    durable_name=durable,
                    filter_subject=self.names.task_subject(self.region, handler, priority, capabilities),
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=self.ack_wait_s,
                    max_deliver=5,
                    max_ack_pending=10_000,
                ),
            )
        sub = await self.js.pull_subscribe_bind(durable=durable, stream=stream)
        # Heartbeats beat against the ack_wait the server holds, whoever created the consumer.
        ack_wait = float(info.config.ack_wait or self.ack_wait_s)
        return handler, priority, sub, max(0.5, ack_wait / 3)

    async def _bucket(self, name: str) -> Any:
        try:
            return _edits_through_domain(await self._buckets_js.key_value(self.names.bucket(name)), self.hub_domain)
        except Exception:  # noqa: BLE001 - presence and progress KV are informational
            log.warning("bucket %s is not open on this worker", self.names.bucket(name))
            return None

    def _entry(self) -> bytes:
        return json.dumps({
            "workerId": self.worker_id,
            "region": self.region,
            "handlers": sorted(self.handlers),
            "capabilities": list(self.capabilities),
            "capabilityPools": True,
            "concurrency": self.concurrency,
            "inFlight": len(self._running),
            "version": VERSION,
            "host": socket.gethostname(),
            "startedAt": self.started_at,
        }).encode()

    async def _register(self) -> None:
        if self._workers_kv is None:
            return
        try:
            # `<region>.<workerId>`: the permissions let a region's workers write their region's keys only.
            await self._workers_kv.put(f"{self.region}.{self.worker_id}", self._entry())
        except Exception:  # noqa: BLE001
            log.warning("could not write the worker registry entry", exc_info=True)

    async def _refresh_registry(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), REGISTRY_REFRESH_S)
            except asyncio.TimeoutError:
                await self._register()

    async def _pull_loop(self) -> None:
        """One standing pull per lane, all at once: a task starts as soon as any lane has one."""
        await asyncio.gather(*(self._pull_lane(handler, priority, sub, beat) for handler, priority, sub, beat in self._lanes))

    async def _pull_lane(self, handler: str, priority: str, sub: Any, beat_s: float) -> None:
        """
        Pulls one task at a time, only while a slot is free, and runs it once the slot gate lets
        it in (high before normal before low). A lane holds at most one task it has not started:
        what this worker holds beyond its slots stays bounded by its lanes.
        """
        while not self._stopping.is_set():
            if not self._gate.has_room():
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                msgs = await sub.fetch(batch=1, timeout=PULL_WAIT_S)
            except NatsTimeout:
                continue
            except Exception:  # noqa: BLE001 - a reconnect or a leader election: try again
                log.debug("pull failed", exc_info=True)
                await asyncio.sleep(0.2)
                continue
            for msg in msgs:
                if self._stopping.is_set():
                    # Pulled while stopping: straight back to the pool for another worker.
                    await msg.nak()
                    continue
                await self._gate.enter(priority, msg, beat_s)
                run = asyncio.create_task(self._run(msg, handler, beat_s))
                self._running.add(run)
                run.add_done_callback(self._finished)

    def _finished(self, run: asyncio.Task[None]) -> None:
        self._running.discard(run)
        self._slot_free.set()
        self._gate.release()

    async def _run(self, msg: Any, handler_type: str, beat_s: float) -> None:
        started = time.time()
        try:
            task = protocol.read_task(json.loads(msg.data))
        except (ValueError, protocol.TaskError) as err:
            log.error("undecodable task; terminating it: %s", err)
            await msg.term()
            return
        key = f"{task['taskId']}:{task['attempt']}"
        if not self._attempts.begin(key):
            # JetStream delivered it again (a late heartbeat) while it runs here: hold the copy,
            # keep it from going to another worker, and settle it as the original ends.
            log.warning("task delivered again while it runs here; holding the copy instead of running it twice", extra={"taskId": task["taskId"], "attempt": task["attempt"]})
            self._attempts.hold(key, msg, asyncio.create_task(self._heartbeat(msg, beat_s)))
            return
        stored = False
        try:
            await self._run_attempt(msg, task, handler_type, beat_s, started)
            stored = True
        finally:
            for copy, beat in self._attempts.finish(key):
                beat.cancel()
                try:
                    await (copy.ack() if stored else copy.nak())
                except Exception:  # noqa: BLE001 - the server redelivers after ack_wait; its result is a duplicate
                    log.debug("could not settle a held copy", exc_info=True)

    async def _run_attempt(self, msg: Any, task: dict[str, Any], handler_type: str, beat_s: float, started: float) -> None:
        handler = self.handlers.get(task["handler"]["type"]) or self.handlers[handler_type]
        try:
            secrets = open_task_secrets(task, self.vault_keys)
        except VaultError as err:
            # Before the handler runs, all or nothing: the step fails with the reason (never a value).
            await self._publish_and_ack(msg, task, self._result(task, "failure", started, fail=protocol.failure(err.code, err.message, False)), started)
            return
        ctx = Context(task=task, _nc=self.nc, _progress_kv=self._progress_kv, _names=self.names, _checkpoint_kv=self._checkpoints_kv, _heartbeat=msg.in_progress, _js=self.js, _fetch_blob=self._fetch_blob, _put_blob=self._put_blob, secrets=secrets, _region=self.region)
        heartbeat = asyncio.create_task(self._heartbeat(msg, beat_s))
        key = f"{task['taskId']}:{task['attempt']}"
        stop: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._stops[key] = (task["executionId"], _dispatched_at(task), stop)
        try:
            output = await _run_until(call_handler(handler, ctx), task["config"]["timeoutMs"] / 1000, stop)
            body = self._result(task, "wait", started, output=output.request) if isinstance(output, Wait) else self._result(task, "success", started, output=output)
            # Context changes go with a success or a wait, never with a failure (the engine applies them together).
            if ctx.context.updates:
                body["contextUpdates"] = ctx.context.updates
        except PauseSignal as paused:
            body = self._result(task, "wait", started, output=paused.wait.request)
            if ctx.context.updates:
                body["contextUpdates"] = ctx.context.updates
        except _ExecutionEnded as ended:
            body = self._result(task, "failure", started, fail=protocol.failure("EXECUTION_ENDED", str(ended), False))
        except asyncio.TimeoutError:
            fail = protocol.failure("TASK_TIMEOUT", f"handler did not finish within {task['config']['timeoutMs']} ms", True)
            body = self._result(task, "failure", started, fail=fail)
        except RetryableFailure as err:
            body = self._result(task, "failure", started, fail=protocol.failure(err.code, err.message, err.retryable, err.retry_after_ms))
        except Exception as err:  # noqa: BLE001 - an untyped throw: HANDLER_FAILED, retryable
            body = self._result(task, "failure", started, fail=protocol.failure("HANDLER_FAILED", f"{type(err).__name__}: {err}", True))
        finally:
            heartbeat.cancel()
            secrets.clear()
            self._stops.pop(key, None)
        await self._publish_and_ack(msg, task, body, started)

    async def _on_execution_ended(self, msg: Any) -> None:
        """Stops the handlers of attempts dispatched before the execution ended; a later attempt (a retried step) runs on."""
        parts = msg.subject.split(".")
        how, execution_id = parts[-1], parts[-2]
        try:
            ended_at = protocol.parse_iso(json.loads(msg.data).get("at"))
        except (ValueError, AttributeError):
            log.warning("ignored an execution event that does not parse", extra={"executionId": execution_id})
            return
        for running_execution, dispatched_at, stop in list(self._stops.values()):
            if running_execution == execution_id and dispatched_at <= ended_at and not stop.done():
                stop.set_result(f"execution {execution_id} was {how} while this step ran")

    async def _publish_and_ack(self, msg: Any, task: dict[str, Any], body: dict[str, Any], started: float) -> None:
        try:
            data = json.dumps(body).encode()
        except (TypeError, ValueError) as err:
            fail = protocol.failure("UNSUPPORTED_JSON", f"the handler's output is not JSON: {err}", False)
            data = json.dumps(self._result(task, "failure", started, fail=fail)).encode()
        # Result first, then ack: a worker that dies in between leaves a redelivery, never a lost result.
        await self.js.publish(self.names.results_subject(self.region), data, headers={"Nats-Msg-Id": f"{task['taskId']}:{task['attempt']}"})
        try:
            await msg.ack_sync()
        except Exception:  # noqa: BLE001 - not confirmed: the task comes back after ack_wait and its result is a duplicate
            log.debug("ack not confirmed", exc_info=True)

    async def _blob_store(self) -> Any:
        # The region's bucket, opened on first use: few tasks need it (an offloaded context, a large checkpoint).
        if self._blobs is None:
            name = self.names.blobs_bucket(self.region)
            try:
                store = await self._buckets_js.object_store(name)
            except (BucketNotFoundError, NotFoundError):
                # Made here only where this worker may (a development server); the engine makes it for the regions it knows.
                store = await self._buckets_js.create_object_store(name)
            self._blobs = _edits_through_domain(store, self.hub_domain)
        return self._blobs

    async def _fetch_blob(self, name: str) -> Optional[bytes]:
        """One blob of the region's bucket as stored (gzip'd), or None."""
        try:
            return (await (await self._blob_store()).get(name)).data
        except (ObjectNotFoundError, ObjectDeletedError):
            return None

    async def _put_blob(self, name: str, data: bytes) -> None:
        """Stores `data` (already gzip'd) under `name`, replacing what was there."""
        await (await self._blob_store()).put(name, data)

    def _result(self, task: dict[str, Any], outcome: str, started: float, **kw: Any) -> dict[str, Any]:
        return protocol.result(task, outcome, worker_id=self.worker_id, region=self.region, started=started, completed=time.time(), **kw)

    @staticmethod
    async def _heartbeat(msg: Any, every_s: float) -> None:
        """In-progress acks while the handler runs: the task is not redelivered to another worker."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await msg.in_progress()
            except Exception:  # noqa: BLE001 - a lost connection: the server redelivers after ack_wait
                log.debug("heartbeat failed", exc_info=True)

    async def stop(self, grace_s: float = 30.0) -> None:
        """Drains: pulls no more, lets running handlers finish (up to `grace_s`), deregisters, closes."""
        self._stopping.set()
        self._slot_free.set()
        if self._loop_task:
            await self._loop_task
        if self._running:
            await asyncio.wait(self._running, timeout=grace_s)
        if self._registry_task:
            await self._registry_task
        if self._workers_kv is not None:
            try:
                await self._workers_kv.delete(f"{self.region}.{self.worker_id}")
            except Exception:  # noqa: BLE001 - the bucket's TTL removes it
                pass
        if self.nc is not None:
            # Every result was published with a JetStream ack and every task acked: nothing is
            # in flight. (nats-py's drain() would also wait out its pull subscriptions: 30 s.)
            await self.nc.flush()
            await self.nc.close()


class Attempts:
    """The attempts running here (`taskId:attempt`), with copies JetStream delivered again meanwhile."""

    def __init__(self) -> None:
        self._held: dict[str, list[tuple[Any, Any]]] = {}

    def begin(self, key: str) -> bool:
        """True: run it. False: it runs here already (hold the copy)."""
        if key in self._held:
            return False
        self._held[key] = []
        return True

    def hold(self, key: str, msg: Any, heartbeat: Any) -> None:
        self._held[key].append((msg, heartbeat))

    def finish(self, key: str) -> list[tuple[Any, Any]]:
        """The copies held while it ran (each with its heartbeat), to settle as the original did."""
        return self._held.pop(key, [])


class _DomainEdits:
    """A JetStream context whose writes to KV and Object Store subjects go through the hub's domain.

    From a leaf, a put on `$KV.<bucket>.<key>` reaches no stream (the bucket is the hub's, in
    another JetStream domain): it must be published as `$JS.<domain>.API.$KV.<bucket>.<key>`, as
    the TypeScript worker (nats.js) does, and as the shipped leaf permissions grant. nats-py
    publishes bucket writes without that prefix, so its KV and Object Store handles get this
    context, which prefixes them and passes everything else through.
    """

    def __init__(self, js: Any, domain: str):
        self._js = js
        self._prefix = f"$JS.{domain}.API."

    async def publish(self, subject: str, *args: Any, **kwargs: Any) -> Any:
        if subject.startswith(("$KV.", "$O.")):
            subject = self._prefix + subject
        return await self._js.publish(subject, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)


def _edits_through_domain(bucket: Any, domain: Optional[str]) -> Any:
    """A KV or Object Store handle of nats-py whose writes go through `domain` (none: as it is)."""
    if domain:
        bucket._js = _DomainEdits(bucket._js, domain)  # nats-py's handles publish through their `_js`
    return bucket


def _dispatched_at(task: dict[str, Any]) -> float:
    try:
        return protocol.parse_iso(task.get("metadata", {}).get("dispatchedAt"))
    except ValueError:
        return 0.0  # no dispatch time: any end of its execution stops it


class _ExecutionEnded(Exception):
    """The run's execution ended elsewhere while its handler ran."""


async def _run_until(handler_run: Any, timeout_s: float, stop: "asyncio.Future[str]") -> Any:
    """The handler's output; raises TimeoutError at its timeout, _ExecutionEnded when `stop` fires first."""
    run = asyncio.ensure_future(handler_run)
    done, _ = await asyncio.wait({run, stop}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    if run in done:
        return run.result()
    run.cancel()
    try:
        await run  # let the handler unwind (its finally blocks) before the slot is reused
    except BaseException:  # noqa: BLE001 - its CancelledError or whatever it raised while stopping
        pass
    if stop in done:
        raise _ExecutionEnded(stop.result())
    raise asyncio.TimeoutError


def connect_options_from_env(env: dict[str, str] = dict(os.environ)) -> dict[str, Any]:
    """NATS_USER / NATS_PASSWORD or NATS_CREDS, and NATS_TLS_CA / NATS_TLS_CERT / NATS_TLS_KEY
    (mutual TLS, as the shipped configs require), as the TypeScript binaries read them."""
    options: dict[str, Any] = {}
    if env.get("NATS_CREDS"):
        options["user_credentials"] = env["NATS_CREDS"]
    if env.get("NATS_USER"):
        options["user"] = env["NATS_USER"]
        options["password"] = env.get("NATS_PASSWORD", "")
    ca, cert, key = env.get("NATS_TLS_CA"), env.get("NATS_TLS_CERT"), env.get("NATS_TLS_KEY")
    if bool(cert) != bool(key):
        raise ValueError("NATS_TLS_CERT and NATS_TLS_KEY go together: a client certificate needs its key")
    if ca or cert:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
        if cert:
            context.load_cert_chain(cert, key)
        options["tls"] = context
    return options
