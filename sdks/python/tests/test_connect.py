"""The worker's NATS settings from the environment, as the TypeScript binaries read them."""

import os
import ssl
import subprocess
import tempfile
import unittest

from flowmonkey.worker import connect_options_from_env

SCRIPTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts")


class ConnectOptionsTest(unittest.TestCase):
    def test_user_and_password(self) -> None:
        options = connect_options_from_env({"NATS_USER": "worker-eu-west-1", "NATS_PASSWORD": "p"})
        self.assertEqual((options["user"], options["password"]), ("worker-eu-west-1", "p"))
        self.assertNotIn("tls", options)

    def test_mutual_tls_from_the_files_scripts_certs_makes(self) -> None:
        with tempfile.TemporaryDirectory() as certs:
            subprocess.run(["bash", os.path.join(SCRIPTS, "certs"), "--days", "1", "--roles", "worker-us-east-1", certs, "hub"], check=True, capture_output=True)
            env = {
                "NATS_TLS_CA": os.path.join(certs, "ca.pem"),
                "NATS_TLS_CERT": os.path.join(certs, "worker-us-east-1.pem"),
                "NATS_TLS_KEY": os.path.join(certs, "worker-us-east-1-key.pem"),
            }
            context = connect_options_from_env(env)["tls"]
            self.assertIsInstance(context, ssl.SSLContext)
            self.assertEqual(context.verify_mode, ssl.CERT_REQUIRED)
            self.assertTrue(context.check_hostname)
            self.assertEqual(len(context.get_ca_certs()), 1)

    def test_a_certificate_without_its_key_is_refused(self) -> None:
        with self.assertRaisesRegex(ValueError, "NATS_TLS_KEY"):
            connect_options_from_env({"NATS_TLS_CERT": "/x/client.pem"})


if __name__ == "__main__":
    unittest.main()
