"""Vault secrets: sealed for the pool's public key (libsodium sealed boxes), opened all or none."""

import base64
import unittest

from nacl.public import PrivateKey, SealedBox

from flowmonkey.secrets import VaultError, VaultKeys, open_task_secrets


def sealed(key: PrivateKey, value: str) -> str:
    return base64.b64encode(SealedBox(key.public_key).encrypt(value.encode())).decode()


class SecretsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.pool = PrivateKey.generate()
        self.env = {"FM_VAULT_PRIVATE_KEY": base64.b64encode(bytes(self.pool)).decode()}

    def task(self, **vault: str) -> dict:
        return {"handler": {"type": "pay"}, "metadata": {"region": "us-east-1"}, "vault": vault}

    def test_opens_every_secret_and_drops_the_sealed_copies(self) -> None:
        task = self.task(token=sealed(self.pool, "s3cret"), other=sealed(self.pool, "two"))
        secrets = open_task_secrets(task, VaultKeys.from_env(self.env))
        self.assertEqual((secrets.get("token"), secrets.get("other"), sorted(secrets.keys())), ("s3cret", "two", ["other", "token"]))
        self.assertEqual(task["vault"], {})
        secrets.clear()
        self.assertIsNone(secrets.get("token"))

    def test_a_secret_sealed_for_another_pool_fails_them_all_without_its_value(self) -> None:
        task = self.task(token=sealed(self.pool, "s3cret"), foreign=sealed(PrivateKey.generate(), "theirs"))
        with self.assertRaises(VaultError) as caught:
            open_task_secrets(task, VaultKeys.from_env(self.env))
        self.assertEqual(caught.exception.code, "VAULT_SEALED_FOR_ANOTHER_POOL")
        self.assertNotIn("theirs", caught.exception.message)

    def test_no_key_is_vault_not_configured_and_a_per_handler_key_wins(self) -> None:
        with self.assertRaises(VaultError) as caught:
            open_task_secrets(self.task(token=sealed(self.pool, "x")), VaultKeys.from_env({}))
        self.assertEqual(caught.exception.code, "VAULT_NOT_CONFIGURED")
        other = PrivateKey.generate()
        keys = VaultKeys.from_env({**self.env, "FM_VAULT_PRIVATE_KEYS": '{"pay": "%s"}' % base64.b64encode(bytes(other)).decode()})
        self.assertEqual(open_task_secrets(self.task(token=sealed(other, "mine")), keys).get("token"), "mine")

    def test_a_malformed_key_is_refused_at_start(self) -> None:
        with self.assertRaises(ValueError):
            VaultKeys.from_env({"FM_VAULT_PRIVATE_KEY": "bm90LWEta2V5"})


if __name__ == "__main__":
    unittest.main()
