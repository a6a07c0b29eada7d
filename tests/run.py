"""The whole suite as `make test` runs it: the browser tests in front, the rest beside them.

The browser tests spend much of their time waiting (for Chromium to draw, for a worker to
import TensorFlow) and are the ones a busy machine makes flaky: they run first, at normal
priority, with their output streamed. The other tests are CPU work that needs no
particular timing: they run at the same time, in a second pytest at the lowest priority
(`nice` 19), so that they only take the CPU the browser tests leave idle. Their output is
printed when both are done. The exit status is the first failure's, or 0.

`python -m pytest` still runs everything in one process, one test after another.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOWEST_PRIORITY = 19


def pytest_command(marker: str, basetemp: Path) -> list[str]:
    # Each process its own base folder: pytest prunes old numbered folders it finds in a
    # shared one, and the cache's "last failed" file would be written by both.
    return [
        sys.executable, "-m", "pytest", "-m", marker,
        "--basetemp", str(basetemp), "-p", "no:cacheprovider",
    ]  # fmt: skip


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="fmnist-tests-"))
    log_path = scratch / "library-tests.log"
    try:
        with log_path.open("w") as log:
            beside = subprocess.Popen(
                pytest_command("not browser", scratch / "library"),
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.nice(LOWEST_PRIORITY),
            )
            try:
                print("== browser tests (the others run beside them, at nice 19) ==", flush=True)
                browser = subprocess.run(
                    pytest_command("browser", scratch / "browser"), cwd=PROJECT_ROOT
                ).returncode
                library = beside.wait()
            finally:
                if beside.poll() is None:
                    beside.kill()
        print("\n== the other tests ==", flush=True)
        print(log_path.read_text(), end="", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return next((code for code in (browser, library) if code), 0)


if __name__ == "__main__":
    sys.exit(main())
