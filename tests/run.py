"""The whole suite as `make test` runs it: the browser tests in front, the rest beside them.

The browser tests spend much of their time waiting (for Chromium to draw, for a worker to
import TensorFlow) and are the ones a busy machine makes flaky: they run first, at normal
priority, with their output streamed. The other tests are CPU work that needs no
particular timing: they run at the same time, in a second pytest at the lowest priority
(`nice` 19), so that they only take the CPU the browser tests leave idle. Their output is
printed when both are done. The exit status is the first failure's, or 0.

`python -m pytest` still runs everything in one process, one test after another;
`python -m tests.run -x` passes its options to both processes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOWEST_PRIORITY = 19


def pytest_command(marker: str, basetemp: Path, extra: list[str]) -> list[str]:
    # Each process its own base folder: pytest prunes old numbered folders it finds in a
    # shared one, and the cache's "last failed" file would be written by both.
    return [
        sys.executable, "-m", "pytest", "-m", marker,
        "--basetemp", str(basetemp), "-p", "no:cacheprovider", *extra,
    ]  # fmt: skip


def main(extra: list[str]) -> int:
    """``extra``: more pytest options for both processes (`python -m tests.run -x`)."""
    scratch = Path(tempfile.mkdtemp(prefix="fmnist-tests-"))
    log_path = scratch / "library-tests.log"
    processes: list[subprocess.Popen] = []

    def stop(signum: int, frame: object) -> None:
        # A SIGTERM (a CI's time limit) reaches this process only: pass it on to both
        # pytests as the Ctrl-C a terminal would have sent them all.
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        with log_path.open("w") as log:
            processes.append(
                subprocess.Popen(
                    pytest_command("not browser", scratch / "library", extra),
                    cwd=PROJECT_ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=lambda: os.nice(LOWEST_PRIORITY),
                )
            )
            print("== browser tests (the others run beside them, at nice 19) ==", flush=True)
            processes.append(
                subprocess.Popen(
                    pytest_command("browser", scratch / "browser", extra), cwd=PROJECT_ROOT
                )
            )
            codes = [process.wait() for process in reversed(processes)]
    except KeyboardInterrupt:
        # Both have had their Ctrl-C: let them tear down and say what ran.
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        codes = [130]
    finally:
        if log_path.exists():
            print("\n== the other tests ==", flush=True)
            print(log_path.read_text(), end="", flush=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return next((code for code in codes if code), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
