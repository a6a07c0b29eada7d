"""What the inference service adds to one prediction: ``python -m bench.inference_roundtrip``.

Medians of 200 calls, side by side in one process: the traced forward pass of
the shipped model called in process, the same model through the inference
client (pickled pictures over the socket pair, the call, the softmax back),
and an empty request (the transport alone).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

REPEATS = 200


def medians_us(calls: dict[str, Callable[[], object]], repeats: int = REPEATS) -> dict[str, float]:
    """Median time of each call; the calls take turns, so drift on a busy machine hits all."""
    for call in calls.values():
        for _ in range(20):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(times) * 1e6 for name, times in samples.items()}


def main() -> None:
    from fmnist import inference_client, runs
    from fmnist.data import load_dataset
    from fmnist.inference_protocol import PING, RunModel
    from fmnist.ml.inference import load_run_model, predict_probabilities

    record = runs.best_run()
    assert record is not None, "no saved run"
    ref = RunModel.of(record)
    picture = load_dataset(allow_download=False).x_test[:1]
    model = load_run_model(record["run_id"])
    client = inference_client.InferenceClient()
    try:
        client.check_model(ref)
        medians = medians_us(
            {
                "in_process": lambda: predict_probabilities(model, picture),
                "through_service": lambda: client.predict(ref, picture),
                "empty_request": lambda: client._call(PING, ()),
            }
        )
    finally:
        client.shutdown()
    print(
        json.dumps(
            {
                "model": record["network"],
                "one_picture_in_process_us_median": round(medians["in_process"]),
                "one_picture_through_service_us_median": round(medians["through_service"]),
                "added_us": round(medians["through_service"] - medians["in_process"]),
                "empty_request_us_median": round(medians["empty_request"]),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
