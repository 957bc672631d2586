"""Unit tests of the contract helpers (python -m unittest discover -s sdks/python/tests)."""

import unittest

from flowmonkey import protocol
from flowmonkey.protocol import Names


class NamesTest(unittest.TestCase):
    def test_names_match_the_typescript_ones(self) -> None:
        n = Names("fm")
        self.assertEqual(n.tasks_stream, "FM_TASKS")
        self.assertEqual(n.bucket("workers"), "fm_workers")
        self.assertEqual(n.blobs_bucket("eu-west-1"), "fm_blobs_eu-west-1")
        self.assertEqual(n.progress_subject("eu-west-1", "e", "s"), "fm.progress.~eu-west-1.e.s")
        self.assertEqual(n.task_subject("us-east-1", "echo", "high"), "fm.tasks.us-east-1.echo.high")
        self.assertEqual(n.results_subject("eu-west-1"), "fm.results.eu-west-1")
        self.assertEqual(Names.pool_consumer("us-east-1", "echo", "normal"), "pool_us-east-1_echo_normal")
        self.assertEqual(Names("t-x").tasks_stream, "T_X_TASKS")

    def test_capability_pools_are_named_as_the_typescript_side_names_them(self) -> None:
        n = Names("fm")
        self.assertEqual(n.task_subject("us-east-1", "render", "high", ("gpu", "avx", "gpu")), "fm.tasks.us-east-1.render~avx~gpu.high")
        self.assertEqual(Names.pool_consumer("us-east-1", "render", "low", ("gpu",)), "pool_us-east-1_render~gpu_low")
        with self.assertRaises(ValueError):
            protocol.pool_token("render", ["g.pu"])


class ReadTaskTest(unittest.TestCase):
    def task(self, **over):
        base = {"taskId": "e/s", "executionId": "e", "stepId": "s", "attempt": 1, "handler": {"type": "echo"}, "config": {"timeoutMs": 1000}}
        base.update(over)
        return base

    def test_accepts_a_task(self) -> None:
        self.assertEqual(protocol.read_task(self.task())["taskId"], "e/s")

    def test_refuses_what_breaks_the_contract(self) -> None:
        for bad in (self.task(attempt=0), self.task(attempt=True), self.task(taskId=""), self.task(handler={"type": "a.b"}), self.task(config={}), []):
            with self.assertRaises(protocol.TaskError):
                protocol.read_task(bad)


class ResultTest(unittest.TestCase):
    def test_success_and_failure_shapes(self) -> None:
        task = {"taskId": "e/s", "executionId": "e", "stepId": "s", "attempt": 2}
        ok = protocol.result(task, "success", worker_id="w", region="us-east-1", started=0.0, completed=0.5, output={"x": 1})
        self.assertEqual(ok["output"], {"x": 1})
        self.assertEqual(ok["metrics"]["durationMs"], 500.0)
        self.assertEqual(ok["metrics"]["startedAt"], "1970-01-01T00:00:00.000Z")
        bad = protocol.result(task, "failure", worker_id="w", region="us-east-1", started=0.0, completed=0.0,
                              fail=protocol.failure("X" * 200, "m" * 20000, True, 5))
        self.assertEqual(len(bad["failure"]["code"]), protocol.MAX_CODE)
        self.assertEqual(len(bad["failure"]["message"]), protocol.MAX_MESSAGE)
        self.assertEqual(bad["failure"]["retryAfterMs"], 5)
        self.assertNotIn("output", bad)


if __name__ == "__main__":
    unittest.main()


class SlotGateTest(unittest.IsolatedAsyncioTestCase):
    async def test_a_freed_slot_goes_to_the_highest_priority_waiter(self) -> None:
        import asyncio

        from flowmonkey.worker import _SlotGate

        class Msg:
            async def in_progress(self) -> None:
                pass

        running = [1]
        gate = _SlotGate(lambda: running[0], 1)
        self.assertFalse(gate.has_room())
        order: list[str] = []

        async def wait(priority: str) -> None:
            await gate.enter(priority, Msg(), 5)
            order.append(priority)

        low = asyncio.create_task(wait("low"))
        await asyncio.sleep(0)
        high = asyncio.create_task(wait("high"))
        await asyncio.sleep(0)
        running[0] = 0
        gate.release()
        await asyncio.wait([low, high], timeout=0.1)
        # One slot: the high task took it although the low one waited longer; the low one still waits.
        self.assertEqual(order, ["high"])
        self.assertFalse(low.done())
        running[0] = 0
        gate.release()
        await asyncio.wait_for(low, 1)
        self.assertEqual(order, ["high", "low"])


class WaitTest(unittest.TestCase):
    def test_wait_request_and_result_shape(self) -> None:
        from flowmonkey.handler import Context

        task = {"taskId": "e/s", "executionId": "e", "stepId": "s", "attempt": 1}
        ctx = Context(task=task, _nc=None, _progress_kv=None, _names=Names())
        wait = ctx.wait("tok-1", event="order.paid", filter="data.id = 'e'", reason="x" * 600)
        self.assertEqual(wait.request["resumeToken"], "tok-1")
        self.assertEqual(wait.request["resumeOn"], {"event": "order.paid", "filter": "data.id = 'e'"})
        self.assertEqual(len(wait.request["reason"]), 512)
        body = protocol.result(task, "wait", worker_id="w", region="us-east-1", started=0.0, completed=0.0, output=wait.request)
        self.assertEqual(body["wait"]["resumeToken"], "tok-1")
        self.assertNotIn("output", body)
        self.assertIsNone(ctx.resume)


class AttemptsTest(unittest.TestCase):
    def test_a_copy_of_a_running_attempt_is_held_and_handed_back_when_it_ends(self) -> None:
        from flowmonkey.worker import Attempts

        attempts = Attempts()
        self.assertTrue(attempts.begin("e/s:1"))
        self.assertFalse(attempts.begin("e/s:1"))  # redelivered while it runs: not run twice
        attempts.hold("e/s:1", "copy", "beat")
        self.assertTrue(attempts.begin("e/s:2"))  # another attempt of the step is another task
        self.assertEqual(attempts.finish("e/s:1"), [("copy", "beat")])
        self.assertTrue(attempts.begin("e/s:1"))  # once ended, a later delivery runs again
