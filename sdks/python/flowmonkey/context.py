"""`ctx.context`: the execution's context as a handler sees it, as the TypeScript worker's.

Reads are async because a large context (over the engine's FM_CONTEXT_INLINE_MAX_BYTES) is not
in the task: the task carries `contextRef`, a gzip'd manifest in the region's blob bucket
(`fm_blobs_<region>`), and each large top-level key is its own gzip'd blob, fetched only when that key is read
(`get("a.b")` loads key `a`), once per task. Writes are synchronous and load nothing: they are
recorded as the result's `contextUpdates` (applied by the engine with a success or a wait), and
reads see them. docs/PROTOCOL.md, "Offloaded context".
"""

from __future__ import annotations

import copy
import json
import zlib
from typing import Any, Awaitable, Callable, Optional

# Keys that would reach a prototype in the engine's JavaScript: refused in paths, as the engine does.
FORBIDDEN = frozenset({"__proto__", "prototype", "constructor"})

Op = Callable[[dict[str, Any]], None]
# Fetches one blob of the region's bucket (fm_blobs_<region>) by name (its stored, gzip'd bytes), or None when there is none.
BlobFetch = Callable[[str], Awaitable[Optional[bytes]]]


class ContextError(Exception):
    """A context read that cannot be served: a bad path, or a blob missing or not what its reference says."""


def parse_path(path: str) -> list[str]:
    keys = path.split(".")
    if any(key == "" or key in FORBIDDEN for key in keys):
        raise ContextError(f"invalid context path {json.dumps(path)}")
    return keys


def _parent(root: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    node = root
    for key in keys[:-1]:
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = node[key] = {}
        node = nxt
    return node


def gunzip_json(data: bytes, max_bytes: int, what: str) -> Any:
    """gzip'd JSON of at most `max_bytes` (as its reference announced): a hostile blob cannot exhaust memory."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        raw = inflater.decompress(data, max_bytes + 1)
    except zlib.error as err:
        raise ContextError(f"{what} is not gzip data: {err}") from err
    if len(raw) > max_bytes or inflater.unconsumed_tail:
        raise ContextError(f"{what} is larger than the {max_bytes} bytes its reference says")
    return json.loads(raw)


class InlineSource:
    """The context carried in the task message."""

    def __init__(self, context: dict[str, Any]):
        self._context = context

    async def keys(self) -> list[str]:
        return list(self._context)

    async def load(self, key: str) -> tuple[Any, bool]:
        # (value, present); the value is shared with the task, so it is copied before a change.
        return (self._context[key], True) if key in self._context else (None, False)


class OffloadedSource:
    """A context the engine offloaded: the manifest on first use, a key's blob when that key is read."""

    def __init__(self, fetch: BlobFetch, ref: dict[str, Any]):
        self._fetch = fetch
        self._ref = ref
        self._manifest: Optional[dict[str, Any]] = None

    async def _blob_json(self, name: str, max_bytes: int, what: str) -> Any:
        data = await self._fetch(name)
        if data is None:
            # Content-addressed and written once: a missing blob was deleted under a running execution.
            raise ContextError(f"{what} is missing from the blob bucket ({name})")
        return gunzip_json(data, max_bytes, f"{what} ({name})")

    async def _keys(self) -> dict[str, Any]:
        if self._manifest is None:
            manifest = await self._blob_json(self._ref["name"], int(self._ref["size"]), "context manifest")
            if not isinstance(manifest, dict) or manifest.get("version") != 1 or not isinstance(manifest.get("keys"), dict):
                raise ContextError("the context manifest is not a version 1 manifest")
            self._manifest = manifest
        return self._manifest["keys"]

    async def keys(self) -> list[str]:
        return list(await self._keys())

    async def load(self, key: str) -> tuple[Any, bool]:
        entry = (await self._keys()).get(key)
        if not isinstance(entry, dict):
            return None, False
        if entry.get("kind") == "inline":
            return entry.get("value"), True
        return await self._blob_json(entry["name"], int(entry["bytes"]), f"context key {json.dumps(key)}"), True


class ExecutionContext:
    """`ctx.context`: get (async), set / merge / delete (recorded as contextUpdates; reads see them)."""

    def __init__(self, source: InlineSource | OffloadedSource):
        self._source = source
        self._view: dict[str, Any] = {}
        self._resolved: set[str] = set()
        self._pending: dict[str, list[Op]] = {}
        self.updates: list[dict[str, Any]] = []

    async def _resolve(self, key: str) -> None:
        if key in self._resolved:
            return
        value, present = await self._source.load(key)
        if key in self._resolved:  # a write of the whole key while it loaded decided it
            return
        ops = self._pending.pop(key, [])
        if present:
            self._view[key] = copy.deepcopy(value) if ops else value
        for op in ops:
            op(self._view)
        self._resolved.add(key)

    def _change(self, key: str, op: Op) -> None:
        if key not in self._resolved:
            self._pending.setdefault(key, []).append(op)
            return
        if key in self._view:
            self._view[key] = copy.deepcopy(self._view[key])
        op(self._view)

    def _replace(self, key: str, value: Any, present: bool) -> None:
        self._pending.pop(key, None)
        if present:
            self._view[key] = value
        else:
            self._view.pop(key, None)
        self._resolved.add(key)

    async def get(self, path: Optional[str] = None) -> Any:
        """The value at `path` (dot-separated), or the whole context without one (which loads every key); None when absent."""
        if path is None:
            for key in await self._source.keys():
                await self._resolve(key)
            return self._view
        keys = parse_path(path)
        await self._resolve(keys[0])
        node: Any = self._view
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return node

    def set(self, path: str, value: Any) -> None:
        keys = parse_path(path)
        if len(keys) == 1:
            self._replace(keys[0], value, True)
        else:
            self._change(keys[0], lambda root: _parent(root, keys).__setitem__(keys[-1], value))
        self.updates.append({"op": "set", "path": path, "value": value})

    def merge(self, path_or_value: str | dict[str, Any], value: Optional[dict[str, Any]] = None) -> None:
        """Shallow-merges `value` into the object at `path` (the root when only a dict is given)."""
        path = path_or_value if isinstance(path_or_value, str) else None
        obj = value if isinstance(path_or_value, str) else path_or_value
        if not isinstance(obj, dict):
            raise ContextError("context.merge needs an object")
        if path is None:
            for k, v in obj.items():
                if k not in FORBIDDEN:
                    self._replace(k, v, True)
            self.updates.append({"op": "merge", "value": obj})
            return
        keys = parse_path(path)

        def merge_into(root: dict[str, Any]) -> None:
            parent = _parent(root, keys)
            target = parent.get(keys[-1])
            if not isinstance(target, dict):
                target = parent[keys[-1]] = {}
            target.update({k: v for k, v in obj.items() if k not in FORBIDDEN})

        self._change(keys[0], merge_into)
        self.updates.append({"op": "merge", "path": path, "value": obj})

    def delete(self, path: str) -> None:
        keys = parse_path(path)
        if len(keys) == 1:
            self._replace(keys[0], None, False)
        else:

            def drop(root: dict[str, Any]) -> None:
                node: Any = root
                for key in keys[:-1]:  # only what exists: deleting a missing path creates nothing
                    node = node.get(key) if isinstance(node, dict) else None
                if isinstance(node, dict):
                    node.pop(keys[-1], None)

            self._change(keys[0], drop)
        self.updates.append({"op": "delete", "path": path})


def context_of(task: dict[str, Any], fetch: BlobFetch) -> ExecutionContext:
    """The task's context: inline, or offloaded behind `contextRef`."""
    ref = task.get("contextRef")
    if isinstance(ref, dict):
        return ExecutionContext(OffloadedSource(fetch, ref))
    context = task.get("context")
    return ExecutionContext(InlineSource(context if isinstance(context, dict) else {}))
