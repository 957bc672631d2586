# The conformance handlers for the Python worker (python -m flowmonkey --module this file).
import asyncio
import hashlib

from flowmonkey import NonRetryableFailure, RetryableFailure, define_handler


async def shout(ctx):
    await ctx.progress(50, "halfway")
    return {"text": str(ctx.input.get("text") or "").upper(), "lang": "python"}


def flaky(ctx):
    if ctx.attempt == 1:
        raise RetryableFailure("FLAKY", "the first attempt fails")
    return {"attempt": ctx.attempt}


def refuse(ctx):
    raise NonRetryableFailure("NOPE", "this input is refused")


async def slow(ctx):
    # Says it runs: a test then knows the handler, not just a pulled message, is in flight.
    await ctx.progress(1, "sleeping")
    await asyncio.sleep(ctx.input["seconds"])
    return {"slept": ctx.input["seconds"]}


async def count(ctx):
    saved = await ctx.load_checkpoint()
    start = saved["next"] if saved else 0
    for i in range(start, ctx.input["to"]):
        await ctx.save_checkpoint({"next": i + 1})
        await asyncio.sleep(ctx.input["pauseMs"] / 1000)
    return {"resumedFrom": start, "reached": ctx.input["to"]}


def approve(ctx):
    if ctx.resume:
        return {"reason": ctx.resume["reason"], "payload": ctx.resume.get("payload")}
    eid = ctx.task["executionId"]
    return ctx.wait(f"tok-{eid}", event="conf.approved", filter=f"data.id = '{eid}'")


async def emit(ctx):
    await ctx.emit("conf.approved", {"id": ctx.input["id"]})
    return {"emitted": ctx.input["id"]}


def fill(ctx):
    # Grows the context by one key of `size` characters (an offloaded context is made of such keys).
    ctx.context.set(ctx.input["key"], "x" * ctx.input["size"])
    return {"filled": ctx.input["key"]}


async def read(ctx):
    # Reads a context the engine offloaded (key by key), and writes one key.
    before = await ctx.context.get("read")
    out = {
        "marker": await ctx.context.get("marker"),
        "big1": len(await ctx.context.get("big1")),
        "big2": len(await ctx.context.get("big2")),
        "readBefore": before is True,
    }
    ctx.context.set("read", True)
    return out


async def big_checkpoint(ctx):
    # Saves a 1.5 MB checkpoint (over the 1 MiB KV limit: the blob store) and fails; the retry loads it.
    saved = await ctx.load_checkpoint()
    if saved:
        return {"loaded": len(saved["rows"]), "attempt": ctx.attempt}
    await ctx.save_checkpoint({"rows": "r" * 1_500_000})
    raise RetryableFailure("AGAIN", "saved a large checkpoint; the next attempt loads it")


def secret(ctx):
    # Opens the step's sealed secret; answers only its length and a digest, never the value.
    value = ctx.secrets.get("conf-token") or ""
    return {"length": len(value), "sha256": hashlib.sha256(value.encode()).hexdigest()[:16]}


async def pause(ctx):
    # Pauses with state (slot freed, checkpoint saved); resumed by its token, it loads the state back.
    if ctx.resume:
        return {"state": await ctx.load_checkpoint(), "reason": ctx.resume["reason"]}
    await ctx.pause("holding", state={"n": 5}, resume_token=f"pause-{ctx.task['executionId']}")


HANDLERS = [
    define_handler("conf-pause", pause),
    define_handler("conf-secret", secret),
    define_handler("conf-big-checkpoint", big_checkpoint),
    define_handler("conf-fill", fill),
    define_handler("conf-read", read),
    define_handler("conf-approve", approve),
    define_handler("conf-emit", emit),
    define_handler("conf-count", count),
    define_handler("conf-shout", shout),
    define_handler("conf-flaky", flaky),
    define_handler("conf-refuse", refuse),
    define_handler("conf-slow", slow),
]
