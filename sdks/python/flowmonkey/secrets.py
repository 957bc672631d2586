"""Vault secrets: `ctx.secrets`, as the TypeScript worker's.

A step that lists secrets under `vault:` gets a task whose `vault` maps each name to its value
sealed (libsodium's crypto_box_seal: X25519 + XSalsa20-Poly1305) for its pool's public key. The
worker opens all of them with the pool's private key before the handler runs, or none: a value
that does not open (sealed for another pool or region) fails the task. Keys come from
FM_VAULT_PRIVATE_KEYS ({"<handler>": "<base64>"}) or FM_VAULT_PRIVATE_KEY (base64), as made by
`flowmonkey secrets keygen`. Errors name the pool and the secret names, never a value.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any, Optional

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox


class VaultError(Exception):
    """A task's secrets that cannot be opened here: `code` is the mesh's error code (not retryable)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _key(value: str, what: str) -> PrivateKey:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValueError(f"{what} is not base64") from err
    if len(raw) != 32:
        raise ValueError(f"{what} is not a 32-byte X25519 private key")
    return PrivateKey(raw)


class VaultKeys:
    """This worker's pool private keys: one per handler, or one for all."""

    def __init__(self, default: Optional[PrivateKey] = None, per_handler: Optional[dict[str, PrivateKey]] = None):
        self._default = default
        self._per_handler = per_handler or {}

    @classmethod
    def from_env(cls, env: dict[str, str] = dict(os.environ)) -> "VaultKeys":
        """FM_VAULT_PRIVATE_KEYS / FM_VAULT_PRIVATE_KEY; a malformed key stops the worker at start."""
        default = _key(env["FM_VAULT_PRIVATE_KEY"], "FM_VAULT_PRIVATE_KEY") if env.get("FM_VAULT_PRIVATE_KEY") else None
        per: dict[str, PrivateKey] = {}
        if env.get("FM_VAULT_PRIVATE_KEYS"):
            mapping = json.loads(env["FM_VAULT_PRIVATE_KEYS"])
            if not isinstance(mapping, dict):
                raise ValueError('FM_VAULT_PRIVATE_KEYS is not {"<handler>": "<base64>"}')
            per = {h: _key(v, f"FM_VAULT_PRIVATE_KEYS[{h}]") for h, v in mapping.items()}
        return cls(default, per)

    def for_handler(self, handler: str) -> Optional[PrivateKey]:
        return self._per_handler.get(handler, self._default)


class Secrets:
    """The secrets of one task, opened: get / has / keys; clear() forgets them."""

    def __init__(self, values: Optional[dict[str, bytearray]] = None):
        self._values = values or {}

    def get(self, name: str) -> Optional[str]:
        value = self._values.get(name)
        return None if value is None else value.decode("utf-8")

    def has(self, name: str) -> bool:
        return name in self._values

    def keys(self) -> list[str]:
        return list(self._values)

    def clear(self) -> None:
        for value in self._values.values():
            value[:] = bytes(len(value))
        self._values.clear()


def open_task_secrets(task: dict[str, Any], keys: VaultKeys) -> Secrets:
    """Opens every sealed secret of the task, or raises VaultError; drops the sealed copies from the task."""
    sealed = task.get("vault") or {}
    if not sealed:
        return Secrets()
    handler = task["handler"]["type"]
    pool = f"{task.get('metadata', {}).get('region', '?')}/{handler}"
    key = keys.for_handler(handler)
    if key is None:
        raise VaultError("VAULT_NOT_CONFIGURED", f"task carries sealed secrets ({', '.join(sealed)}) but this worker has no vault private key for {pool} (FM_VAULT_PRIVATE_KEY)")
    box = SealedBox(key)
    opened: dict[str, bytearray] = {}
    for name, value in sealed.items():
        try:
            opened[name] = bytearray(box.decrypt(base64.b64decode(value, validate=True)))
        except (CryptoError, binascii.Error, ValueError, TypeError):
            Secrets(opened).clear()
            raise VaultError("VAULT_SEALED_FOR_ANOTHER_POOL", f'secret "{name}" was not sealed for this worker\'s key of pool {pool}; it cannot be opened here') from None
    task["vault"] = {}
    return Secrets(opened)
