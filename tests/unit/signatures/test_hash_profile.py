"""The cheap password-hash profile is a test-suite setting only; the product default stays strong."""
import subprocess
import sys

import pytest


@pytest.mark.urs("URS-SEC-01")
def test_without_the_test_profile_passwords_use_argon2id_with_the_recommended_cost():
    code = ("import os; os.environ.pop('CELLQMS_PASSWORD_HASH_PROFILE', None);"
            "from signatures.credentials import hash_password; print(hash_password('x'))")
    env = {k: v for k, v in __import__("os").environ.items() if k != "CELLQMS_PASSWORD_HASH_PROFILE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), out
