"""Library-level figures, each in a fresh subprocess: dataset load, and one prediction
through the inference service against the same forward pass in process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from bench.product import ROOT, environment, median, say

REPEATS = 3


def run_python(arguments: list[str], timeout: float = 600) -> dict:
    """Run Python in a fresh interpreter (cold caches) and return the JSON it prints."""
    done = subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    output = done.stdout.strip()
    try:
        return json.loads(output)
    except ValueError:
        return json.loads(output.splitlines()[-1])


DATASET_LOAD = """
    import json, resource, sys, time
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    from fmnist.data import load_dataset
    dataset = load_dataset(allow_download=False)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "array_mb": dataset.nbytes / 1e6,
                      "peak_rss_growth_mb": (after - before) / 1e3,
                      "tensorflow_imported": "tensorflow" in sys.modules}))
"""


def dataset_load() -> dict:
    say(f"dataset load in a fresh process, {REPEATS} times")
    samples = [run_python(["-c", textwrap.dedent(DATASET_LOAD)]) for _ in range(REPEATS)]
    return {
        "load_seconds_median": round(median([s["seconds"] for s in samples]), 3),
        "arrays_mb": round(samples[0]["array_mb"], 1),
        "peak_rss_growth_mb": round(median([s["peak_rss_growth_mb"] for s in samples]), 1),
        "imports_tensorflow": any(s["tensorflow_imported"] for s in samples),
    }


def inference_roundtrip() -> dict:
    """One picture through the inference client against the in-process traced call.

    Measured by ``python -m bench.inference_roundtrip`` (the inference service's own
    benchmark) when it is there.
    """
    if not (ROOT / "bench" / "inference_roundtrip.py").is_file():
        return {"skipped": "bench/inference_roundtrip.py is not in this tree"}
    say("one picture: through the inference service vs in process (medians of 200)")
    result = run_python(["-m", "bench.inference_roundtrip"])
    if result.get("one_picture_in_process_us_median"):
        result["ratio_service_over_in_process"] = round(
            result["one_picture_through_service_us_median"]
            / result["one_picture_in_process_us_median"],
            2,
        )
    return result
