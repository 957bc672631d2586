"""Checkpoints: inline in KV up to 1 MiB, gzip'd in the blob store above, as the TypeScript worker."""

import asyncio
import json
import unittest
from types import SimpleNamespace

from flowmonkey.handler import Context
from flowmonkey.protocol import Names


class FakeKv:
    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    async def put(self, key: str, value: bytes) -> None:
        self.values[key] = value

    async def get(self, key: str):
        return SimpleNamespace(value=self.values[key]) if key in self.values else None


class CheckpointTest(unittest.TestCase):
    def setUp(self) -> None:
        self.kv = FakeKv()
        self.blobs: dict[str, bytes] = {}

        async def put_blob(name: str, data: bytes) -> None:
            self.blobs[name] = data

        async def fetch_blob(name: str):
            return self.blobs.get(name)

        task = {"executionId": "e1", "taskId": "e1/s", "stepId": "s", "attempt": 1, "context": {}}
        self.ctx = Context(task=task, _nc=None, _progress_kv=None, _names=Names("fm"), _checkpoint_kv=self.kv, _put_blob=put_blob, _fetch_blob=fetch_blob, _region="eu-west-1")

    def test_a_small_checkpoint_stays_in_kv(self) -> None:
        asyncio.run(self.ctx.save_checkpoint({"next": 3}))
        self.assertEqual(json.loads(self.kv.values["eu-west-1.e1.s"]), {"state": {"next": 3}})
        self.assertEqual(asyncio.run(self.ctx.load_checkpoint()), {"next": 3})

    def test_keys_start_with_the_workers_region(self) -> None:
        # The shipped permissions grant a region's workers `$KV.fm_checkpoints.<region>.>` only.
        asyncio.run(self.ctx.save_checkpoint(1))
        self.assertEqual(list(self.kv.values), ["eu-west-1.e1.s"])

    def test_a_large_checkpoint_goes_to_the_blob_store_and_comes_back(self) -> None:
        state = {"rows": "r" * 1_500_000}
        asyncio.run(self.ctx.save_checkpoint(state))
        envelope = json.loads(self.kv.values["eu-west-1.e1.s"])
        self.assertEqual(envelope["blob"], "checkpoints/e1.s")
        self.assertLess(len(self.blobs["checkpoints/e1.s"]), 100_000)  # gzip'd
        self.assertEqual(asyncio.run(self.ctx.load_checkpoint()), state)


class EmitTest(unittest.TestCase):
    def test_events_go_out_under_the_workers_region(self) -> None:
        # The shipped permissions let a region's workers publish `fm.events.~<region>.>` only.
        published: list[tuple[str, dict]] = []

        class FakeJs:
            async def publish(self, subject: str, data: bytes) -> None:
                published.append((subject, json.loads(data)))

        task = {"executionId": "e1", "taskId": "e1/s", "stepId": "s", "attempt": 1, "context": {}, "metadata": {"region": "us-east-1"}}
        ctx = Context(task=task, _nc=None, _progress_kv=None, _names=Names("fm"), _js=FakeJs(), _region="eu-west-1")
        asyncio.run(ctx.emit("order.paid", {"id": 7}))
        self.assertEqual(published[0][0], "fm.events.~eu-west-1.order.paid")
        self.assertEqual({k: published[0][1][k] for k in ("data", "executionId", "stepId")}, {"data": {"id": 7}, "executionId": "e1", "stepId": "s"})
        # Without a worker region, the region the task was sent to.
        asyncio.run(Context(task=task, _nc=None, _progress_kv=None, _names=Names("fm"), _js=FakeJs()).emit("order.paid"))
        self.assertEqual(published[1][0], "fm.events.~us-east-1.order.paid")


if __name__ == "__main__":
    unittest.main()
