"""`python -m flowmonkey --region us-east-1 --module my_handlers [--handlers a,b] [--concurrency 8]`:
a worker process, with the flags and environment of `flowmonkey-worker` (NATS_URL, FM_PREFIX,
FM_REGION, FM_HUB_DOMAIN, FM_CAPABILITIES, NATS_USER/NATS_PASSWORD, NATS_CREDS,
NATS_TLS_CA/NATS_TLS_CERT/NATS_TLS_KEY, FM_VAULT_PRIVATE_KEY(S)). The
module (importable name or .py path) exposes HANDLERS, a list of define_handler(...) results."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import os
import signal
import sys

from .handler import Handler
from .worker import Worker, connect_options_from_env


def load_handlers(module: str) -> list[Handler]:
    if module.endswith(".py"):
        spec = importlib.util.spec_from_file_location("flowmonkey_user_handlers", module)
        if spec is None or spec.loader is None:
            raise SystemExit(f"cannot load {module}")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    else:
        mod = importlib.import_module(module)
    handlers = getattr(mod, "HANDLERS", None)
    if not isinstance(handlers, (list, tuple)) or not all(isinstance(h, Handler) for h in handlers):
        raise SystemExit(f"{module} must define HANDLERS = [define_handler(...), ...]")
    return list(handlers)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m flowmonkey", description="Run FlowMonkey handlers written in Python.")
    p.add_argument("--module", required=True, help="module name or .py file defining HANDLERS")
    p.add_argument("--handlers", default=os.environ.get("FM_HANDLERS") or None, help="comma-separated handler types to serve (default: all in the module)")
    p.add_argument("--region", default=os.environ.get("FM_REGION", "us-east-1"))
    p.add_argument("--concurrency", type=int, default=int(os.environ.get("FM_CONCURRENCY", "8")))
    p.add_argument("--prefix", default=os.environ.get("FM_PREFIX", "fm"))
    p.add_argument("--nats-url", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    p.add_argument("--capabilities", default=os.environ.get("FM_CAPABILITIES", ""),
                   help="what this worker offers, comma-separated (gpu,...): steps that `require` them come to it")
    p.add_argument("--hub-domain", default=os.environ.get("FM_HUB_DOMAIN") or None,
                   help="the hub's JetStream domain, for a worker connected to a leaf region (the buckets live at the hub)")
    p.add_argument("--drain-grace-s", type=float, default=30.0)
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    handlers = load_handlers(args.module)
    if args.handlers:
        wanted = set(args.handlers.split(","))
        missing = wanted - {h.type for h in handlers}
        if missing:
            raise SystemExit(f"{args.module} defines no handler {', '.join(sorted(missing))}")
        handlers = [h for h in handlers if h.type in wanted]
    worker = Worker(handlers, region=args.region, concurrency=args.concurrency, prefix=args.prefix,
                    nats_url=args.nats_url, connect_options=connect_options_from_env(),
                    capabilities=[c.strip() for c in args.capabilities.split(",") if c.strip()], hub_domain=args.hub_domain)
    await worker.start()
    # The line a supervisor (and the tests) wait for.
    print(f"worker started {worker.worker_id}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await worker.stop(args.drain_grace_s)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), stream=sys.stderr)
    asyncio.run(run(parse_args(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    main()
