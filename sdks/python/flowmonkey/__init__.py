"""FlowMonkey Mesh worker SDK for Python (docs/PROTOCOL.md, "Workers in other languages")."""

from .context import ContextError, ExecutionContext
from .handler import Context, Handler, NonRetryableFailure, RetryableFailure, Wait, define_handler
from .worker import Worker

__all__ = ["Context", "ContextError", "ExecutionContext", "Handler", "NonRetryableFailure", "RetryableFailure", "Wait", "Worker", "define_handler"]
