# Fixtures of the Python binding tests: the shared test models (skipped when
# absent) and the C example used as the C reference.
import os
import subprocess

import pytest


def shared_models():
    d = os.environ.get("PACA_SHARED_DIR") or os.environ.get("PACA_SHARED_DEFAULT") or ""
    d = os.path.join(d, "models")
    return d if os.path.isdir(d) else None


@pytest.fixture
def models():
    d = shared_models()
    if d is None:
        pytest.skip("../shared test models not found (set PACA_SHARED_DIR)")
    return d


@pytest.fixture
def stories(models):
    return os.path.join(models, "stories260K", "stories260K.bin")


@pytest.fixture
def run_c():
    """Runs examples/c/generate.c (paca_generator from C): returns (tokens, text, stderr)."""
    exe = os.environ.get("PACA_EXAMPLE_GENERATE")
    if not exe or not os.path.exists(exe):
        pytest.skip("PACA_EXAMPLE_GENERATE (examples/c/generate.c) not built")

    def run(*args):
        p = subprocess.run([exe, *map(str, args)], capture_output=True)
        err = p.stderr.decode()
        tokens = []
        for line in err.splitlines():
            if line.startswith("tokens: "):
                tokens = [int(x) for x in line[len("tokens: "):].split(",")]
        return tokens, p.stdout.decode()[:-1], err, p.returncode

    return run
