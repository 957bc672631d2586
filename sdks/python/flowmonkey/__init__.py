"""FlowMonkey Mesh worker SDK for Python (docs/PROTOCOL.md, "Workers in other languages")."""

from .context import ContextError, ExecutionContext
from .handler import Context, Handler, NonRetryableFailure, PauseSignal, RetryableFailure, Wait, define_handler
from .secrets import Secrets, VaultError, VaultKeys
from .worker import Worker

__all__ = ["Context", "ContextError", "ExecutionContext", "Handler", "NonRetryableFailure", "PauseSignal", "RetryableFailure", "Secrets", "VaultError", "VaultKeys", "Wait", "Worker", "define_handler"]
