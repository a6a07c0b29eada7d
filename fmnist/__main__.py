"""The command line: python -m fmnist info | train | evaluate | predict."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading
from pathlib import Path
from typing import Any

# TensorFlow's C++ start-up chatter is noise on a terminal; real errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fmnist import data


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=1))


def cmd_info(args: argparse.Namespace) -> int:
    import tensorflow as tf

    from fmnist.ml.devices import describe_devices

    dataset = data.load_dataset()
    info = {
        "dataset_path": str(dataset.path),
        "dataset_source": dataset.source,
        "train_count": len(dataset.y_train),
        "test_count": len(dataset.y_test),
        "tensorflow": tf.__version__,
        "devices": describe_devices(),
    }
    if args.json:
        _print_json(info)
    else:
        print(f"Dataset     {info['dataset_path']}  ({info['dataset_source']})")
        print(f"Images      {info['train_count']:,} training, {info['test_count']:,} test")
        print(f"TensorFlow  {info['tensorflow']}")
        print(f"Devices     {', '.join(info['devices'])}")
    return 0


def _progress_line(job: Any) -> str:
    width = 30
    fraction = job.batch / job.batches if job.batches else 0.0
    bar = "#" * int(width * fraction) + "-" * (width - int(width * fraction))
    if job.phase:
        return f"\r{job.phase}...".ljust(100)
    speed = f"{job.images_per_second:7.0f} img/s" if job.images_per_second else " " * 13
    eta = f"ETA {job.eta:4.0f}s" if job.eta else ""
    epoch = min(job.epoch + 1, job.config.epochs)
    return f"\repoch {epoch}/{job.config.epochs} [{bar}] {speed} {eta}".ljust(100)


def cmd_train(args: argparse.Namespace) -> int:
    from fmnist import runs
    from fmnist.client import new_token
    from fmnist.jobs.store import JobStore, Worker
    from fmnist.jobs.worker import run_job
    from fmnist.schema import JobState, TrainConfig

    settings = vars(args) | {
        "devices": tuple(args.devices.split(",")) if args.devices else (),
        "command": "python -m fmnist " + shlex.join(sys.argv[1:]),
    }
    cfg = TrainConfig.from_settings(settings)
    # The job goes into the same store as the page's jobs, already claimed by
    # this process: it shows up on the Train page, and no server worker takes it.
    store = JobStore()
    job_id = store.create(cfg, new_token(), source="cli", worker=Worker.this_process())
    thread = threading.Thread(
        target=run_job, args=(store, store.get(job_id)), name="training", daemon=True
    )
    thread.start()
    show_bar = not args.json and sys.stderr.isatty()
    try:
        while thread.is_alive():
            thread.join(0.5)
            if show_bar:
                line = _progress_line(store.get(job_id, with_events=False))
                print(line, end="", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        # Ctrl-C stops like the page's Stop button: the run is kept, marked stopped.
        print("\nstopping after the current batch...", file=sys.stderr)
        store.request_stop(job_id)
        thread.join()
    job = store.get(job_id)
    if show_bar:
        print(file=sys.stderr)
    if job.state not in (JobState.DONE, JobState.STOPPED) or not job.run_id:
        print(f"training failed: {job.message}", file=sys.stderr)
        return 1
    record = runs.read_record(job.run_id)
    result = {
        "run_id": job.run_id,
        "job_id": job.id,
        "path": str(runs.run_path(job.run_id)),
        "network": cfg.network,
        "status": job.state.value,
        "test_accuracy": job.test_accuracy,
        "epochs_completed": len(job.history),
        "images_per_second": record["images_per_second"],
    }
    if args.json:
        _print_json(result)
    else:
        for entry in job.history:
            print(
                f"epoch {entry.epoch:3d}  loss {entry.loss:.4f}  acc {entry.accuracy:.4f}"
                + (
                    f"  val_loss {entry.val_loss:.4f}  val_acc {entry.val_accuracy:.4f}"
                    if entry.val_loss is not None
                    else ""
                )
            )
        print(
            f"{job.state.value}: test accuracy {job.test_accuracy:.4f}, "
            f"{record['images_per_second']:,.0f} images/s on average, saved as {result['path']}"
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    # The command line is not the web server: it may load TensorFlow itself,
    # through the same code as the inference service.
    from fmnist import evaluation
    from fmnist.ml import inference

    model = inference.load_run_model(args.run)
    dataset = data.load_dataset()
    probabilities = inference.predict_probabilities(model, dataset.x_test)
    matrix = evaluation.confusion_matrix(dataset.y_test, probabilities.argmax(axis=1))
    accuracy = evaluation.accuracy(matrix)
    if args.json:
        _print_json(
            {"run_id": args.run, "test_accuracy": accuracy, "confusion_matrix": matrix.tolist()}
        )
        return 0
    print(f"{args.run}: test accuracy {accuracy:.4f} on {matrix.sum():,} images")
    names = [name[:8] for name in data.CLASS_NAMES]
    print(" " * 12 + " ".join(f"{n:>8}" for n in names))
    for name, row in zip(data.CLASS_NAMES, matrix, strict=True):
        print(f"{name[:11]:<12}" + " ".join(f"{v:8d}" for v in row))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from fmnist import imaging, predictor
    from fmnist.ml import inference

    model = inference.load(run_id=args.run, model_file=args.model)
    prepared = []
    for path in args.files:
        try:
            prepared.append(imaging.prepare_upload(path, Path(path).read_bytes()))
        except OSError as error:
            reason = f"cannot read the file ({error.strerror})"
            prepared.append(imaging.PreparedImage(file=path, error=reason))
    results = predictor.predict_prepared(
        prepared, lambda pixels: inference.predict_probabilities(model, pixels)
    )
    if args.json:
        _print_json([{k: v for k, v in r.items() if k != "top3"} for r in results])
    else:
        for item in results:
            if "error" in item:
                print(f"{item['file']}: {item['error']}")
            else:
                print(f"{item['file']}: {item['class_name']} ({item['confidence']:.1%})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from fmnist.networks import NETWORKS
    from fmnist.schema import LR_SCHEDULES, OPTIMIZERS, TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m fmnist", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="dataset source and counts, TensorFlow, devices")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    train = sub.add_parser("train", help="train a network and save the run under models/")
    train.add_argument("--network", choices=list(NETWORKS), default=defaults.network)
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    train.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=defaults.lr_schedule)
    train.add_argument("--validation-split", type=float, default=defaults.validation_split)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument(
        "--early-stopping",
        dest="early_stopping_patience",
        type=int,
        default=0,
        metavar="PATIENCE",
    )
    train.add_argument("--limit", type=int, default=0, help="train on at most N images")
    train.add_argument("--mixed-precision", action="store_true", help="float16 on GPU")
    train.add_argument("--name", default="")
    train.add_argument("--devices", default="", help="e.g. /gpu:0,/gpu:1 (default: all GPUs)")
    train.add_argument("--json", action="store_true")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a run")
    evaluate.add_argument("--run", required=True)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="classify picture files")
    predict.add_argument("--run", default=None, help="a saved run (default: the best one)")
    predict.add_argument("--model", default=None, help="a .keras file instead of a run")
    predict.add_argument("files", nargs="+")
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as error:  # bad hyper-parameters
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # DataError, RunError, ModelError: one line, no traceback
        from fmnist.inference_protocol import ModelError
        from fmnist.runs import RunError

        if isinstance(error, (data.DataError, RunError, ModelError)):
            print(f"error: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
