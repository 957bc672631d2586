"""ctx.context: reads see the handler's writes, writes become contextUpdates, an offloaded context loads per key."""

import asyncio
import gzip
import json
import unittest

from flowmonkey.context import ContextError, context_of


def run(coro):
    return asyncio.run(coro)


class InlineContextTest(unittest.TestCase):
    def test_reads_see_writes_and_writes_are_recorded_in_order(self) -> None:
        task = {"context": {"order": {"id": "o-1", "lines": 2}, "n": 1}}
        ctx = context_of(task, fetch=None)  # type: ignore[arg-type]
        ctx.set("order.status", "paid")
        ctx.merge("order", {"lines": 3})
        ctx.delete("n")
        ctx.merge({"seen": True})
        self.assertEqual(run(ctx.get("order")), {"id": "o-1", "lines": 3, "status": "paid"})
        self.assertIsNone(run(ctx.get("n")))
        self.assertEqual(run(ctx.get()), {"order": {"id": "o-1", "lines": 3, "status": "paid"}, "seen": True})
        self.assertEqual([u["op"] for u in ctx.updates], ["set", "merge", "delete", "merge"])
        # The task's own context is left as it came.
        self.assertEqual(task["context"], {"order": {"id": "o-1", "lines": 2}, "n": 1})

    def test_refuses_prototype_paths(self) -> None:
        ctx = context_of({"context": {}}, fetch=None)  # type: ignore[arg-type]
        for path in ("__proto__.x", "a..b", "constructor"):
            with self.assertRaises(ContextError):
                ctx.set(path, 1)


class OffloadedContextTest(unittest.TestCase):
    def setUp(self) -> None:
        big = {"rows": ["x" * 100] * 50}
        big_json = json.dumps(big).encode()
        manifest = {"version": 1, "bytes": 0, "keys": {"small": {"kind": "inline", "value": 7}, "big": {"kind": "blob", "name": "context/e/b", "bytes": len(big_json)}}}
        manifest_json = json.dumps(manifest).encode()
        self.blobs = {"context/e/m": gzip.compress(manifest_json), "context/e/b": gzip.compress(big_json)}
        self.fetched: list[str] = []
        self.task = {"context": {}, "contextRef": {"name": "context/e/m", "encoding": "gzip", "size": len(manifest_json), "digest": "sha256:x"}}

    async def fetch(self, name: str):
        self.fetched.append(name)
        return self.blobs.get(name)

    def test_loads_the_manifest_then_only_the_keys_read(self) -> None:
        ctx = context_of(self.task, self.fetch)
        self.assertEqual(run(ctx.get("small")), 7)
        self.assertEqual(self.fetched, ["context/e/m"])
        self.assertEqual(len(run(ctx.get("big.rows"))), 50)
        self.assertEqual(self.fetched, ["context/e/m", "context/e/b"])
        self.assertEqual(run(ctx.get("missing")), None)

    def test_a_write_below_an_unloaded_key_is_replayed_when_it_loads(self) -> None:
        ctx = context_of(self.task, self.fetch)
        ctx.set("big.count", 50)
        self.assertEqual(self.fetched, [])
        self.assertEqual(run(ctx.get("big.count")), 50)
        self.assertEqual(len(run(ctx.get("big.rows"))), 50)

    def test_a_blob_larger_than_its_reference_says_is_refused(self) -> None:
        self.task["contextRef"]["size"] = 10
        with self.assertRaisesRegex(ContextError, "larger than"):
            run(context_of(self.task, self.fetch).get("small"))

    def test_a_missing_blob_is_an_error_not_an_empty_context(self) -> None:
        del self.blobs["context/e/b"]
        with self.assertRaisesRegex(ContextError, "missing"):
            run(context_of(self.task, self.fetch).get("big"))


if __name__ == "__main__":
    unittest.main()
