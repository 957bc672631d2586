"""The protocol's test vectors (schemas/vectors, captured from the TypeScript worker on a real
mesh): this SDK reads every task, opens the vault vector's sealed secret, and builds results of
the same shape as the TypeScript worker's."""

import json
import os
import unittest

from flowmonkey import protocol
from flowmonkey.secrets import VaultKeys, open_task_secrets

VECTORS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "schemas", "vectors")


def vectors() -> dict[str, dict]:
    found = {}
    for name in sorted(os.listdir(VECTORS)):
        if name.endswith(".json"):
            with open(os.path.join(VECTORS, name), encoding="utf-8") as f:
                found[name[:-5]] = json.load(f)
    return found


class VectorsTest(unittest.TestCase):
    def test_every_task_is_read(self) -> None:
        found = vectors()
        self.assertGreaterEqual(len(found), 7)
        for name, vector in found.items():
            with self.subTest(name):
                self.assertEqual(protocol.read_task(vector["task"])["taskId"], vector["task"]["taskId"])

    def test_results_built_here_have_the_typescript_workers_shape(self) -> None:
        for name, vector in vectors().items():
            ts = vector["result"]
            with self.subTest(name):
                kw = {"output": ts.get("output", ts.get("wait")), "fail": ts.get("failure")}
                mine = protocol.result(vector["task"], ts["outcome"], worker_id="py", region="us-east-1", started=0.0, completed=0.001, **kw)
                optional = {"contextUpdates", "logs"}
                self.assertEqual(set(mine) - optional, set(ts) - optional)
                self.assertEqual(set(mine["metrics"]), set(ts["metrics"]) - {"tier"})

    def test_the_vault_vector_opens_to_its_secret(self) -> None:
        vector = vectors()["vault-secret"]
        keys = VaultKeys.from_env({"FM_VAULT_PRIVATE_KEY": vector["poolPrivateKey"]})
        secrets = open_task_secrets(dict(vector["task"]), keys)
        self.assertEqual(secrets.get("conf-token"), vector["secret"])


if __name__ == "__main__":
    unittest.main()
