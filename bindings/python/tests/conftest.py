# Fixtures of the Python binding tests: the shared test models (skipped when
# absent) and the C example used as the C reference.
import os
import subprocess
import sys
import threading
import time

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


@pytest.fixture
def releases_the_gil():
    """releases_the_gil(fn): runs fn() on a thread while this one ticks, with a switch interval of
    a minute, so that this thread runs during fn only where fn releases the GIL; True when a
    tick fell inside fn's run (no timing threshold). fn's exception is raised."""
    def probe(fn):
        old = sys.getswitchinterval()
        sys.setswitchinterval(60.0)
        span, error = [], []
        try:
            def work():
                t0 = time.monotonic()
                try:
                    fn()
                except BaseException as e:  # noqa: B036 (raised again below)
                    error.append(e)
                span.append((t0, time.monotonic()))

            t = threading.Thread(target=work)
            ticks = []
            t.start()
            while t.is_alive():
                ticks.append(time.monotonic())
                time.sleep(0)  # releases the GIL, so a thread back from C can finish
            t.join()
        finally:
            sys.setswitchinterval(old)
        if error:
            raise error[0]
        (a, b), = span
        return any(a < x < b for x in ticks)

    return probe
