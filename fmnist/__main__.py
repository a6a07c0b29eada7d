"""The command line: fmnist (or python -m fmnist) info | runs | train | evaluate | predict."""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import shlex
import sys
import threading
from pathlib import Path
from typing import Any

# Exit statuses: 0 done, 1 some of the work failed (a training, a file to classify),
# 2 unusable arguments (a bad setting, an unknown run, an unreadable model, no dataset).
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=1))


def _hide_native_stderr() -> None:
    """Send what C and C++ libraries write to file descriptor 2 to /dev/null; keep Python's.

    TensorFlow's start-up lines ("WARNING: All log messages before
    absl::InitializeLog()...", "I0000 ... oneDNN", "E0000 ... failed call to
    cuInit") are written by C++ straight to descriptor 2, some before
    TF_CPP_MIN_LOG_LEVEL is read. Python's sys.stderr moves to a duplicate of the
    original descriptor, so our messages, the progress bar, warnings and
    tracebacks still reach the terminal. A crash inside C++ still prints the
    Python stack (faulthandler); --verbose shows everything.
    """
    if sys.stderr is None:
        return
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
    except (OSError, ValueError):
        return  # no descriptor 2 to protect
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
    finally:
        os.close(devnull)
    sys.stderr = open(  # noqa: SIM115 - lives as long as the process
        terminal,
        "w",
        buffering=1,
        encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
        errors="backslashreplace",
    )
    faulthandler.enable(sys.stderr)


# --- info ---------------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    # No TensorFlow here: its version comes from the package metadata and the GPUs
    # from the NVIDIA driver, so this answers in a moment instead of seconds.
    from fmnist import data, hardware

    dataset = data.load_dataset()
    info = {
        "dataset_path": str(dataset.path),
        "dataset_source": dataset.source,
        "train_count": len(dataset.y_train),
        "test_count": len(dataset.y_test),
        "tensorflow": hardware.tensorflow_version(),
        "devices": hardware.describe_devices(),
    }
    if args.json:
        _print_json(info)
    else:
        print(f"Dataset     {info['dataset_path']}  ({info['dataset_source']})")
        print(f"Images      {info['train_count']:,} training, {info['test_count']:,} test")
        print(f"TensorFlow  {info['tensorflow']}")
        print(f"Devices     {', '.join(info['devices'])}")
    return EXIT_OK


# --- runs ---------------------------------------------------------------------------------------


def _accuracy_text(record: dict[str, Any]) -> str:
    accuracy = record.get("test_accuracy")
    return f"{accuracy:.2%}" if isinstance(accuracy, (int, float)) else "-"


def cmd_runs(args: argparse.Namespace) -> int:
    from fmnist import runs

    records, warnings = runs.list_runs()
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    ranked = runs.by_accuracy(records)
    best_id = ranked[0]["run_id"] if ranked else None
    rows = [
        {
            "run_id": record["run_id"],
            "name": record.get("name") or "",
            "network": record["network"],
            "status": record.get("status", ""),
            "test_accuracy": record.get("test_accuracy"),
            "epochs_completed": record.get("epochs_completed"),
            "finished_at": record.get("finished_at", ""),
            "best": record["run_id"] == best_id,
        }
        for record in records
    ]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        print("no saved runs yet: train one with `fmnist train`", file=sys.stderr)
        return EXIT_OK
    table = [("RUN", "NAME", "NETWORK", "TEST ACC", "EPOCHS", "FINISHED")]
    for row, record in zip(rows, records, strict=True):
        epochs = str(row["epochs_completed"] if row["epochs_completed"] is not None else "-")
        if row["status"] and row["status"] != "done":
            epochs += f" ({row['status']})"
        table.append(
            (
                ("* " if row["best"] else "  ") + row["run_id"],
                row["name"] or "-",
                row["network"],
                _accuracy_text(record),
                epochs,
                str(row["finished_at"]).replace("T", " ")[:16] or "-",
            )
        )
    table[0] = ("  " + table[0][0], *table[0][1:])
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        print("  ".join(cells).rstrip())
    if best_id:
        print("* the best run: evaluate and predict use it when --run is not given")
    return EXIT_OK


def _chosen_run(text: str | None) -> dict[str, Any]:
    """The run that --run names (id, start of the id, or name), or by default the best one."""
    from fmnist import runs

    if text is not None:
        return runs.find_run(text)
    best = runs.best_run()
    if best is None:
        raise runs.RunError("no saved run yet: train one first with `fmnist train`")
    return best


def _describe_run(record: dict[str, Any]) -> str:
    return f"{record['run_id']} ({record['network']}, test accuracy {_accuracy_text(record)})"


# --- train --------------------------------------------------------------------------------------


def _progress_line(job: Any) -> str:
    """One line of the bar; until the first batch and after the last it says what happens."""
    width = 30
    fraction = job.batch / job.batches if job.batches else 0.0
    bar = "#" * int(width * fraction) + "-" * (width - int(width * fraction))
    # The engine's phases: loading Fashion-MNIST, building the network, compiling...
    if job.phase:
        return f"\r{job.phase}...".ljust(100)
    if not job.batches:  # the worker is still importing TensorFlow
        return "\rstarting TensorFlow...".ljust(100)
    if getattr(job.state, "value", job.state) == "evaluating":
        return "\revaluating on the test images...".ljust(100)
    speed = f"{job.images_per_second:7.0f} img/s" if job.images_per_second else " " * 13
    eta = f"ETA {job.eta:4.0f}s" if job.eta else ""
    epoch = min(job.epoch + 1, job.config.epochs)
    return f"\repoch {epoch}/{job.config.epochs} [{bar}] {speed} {eta}".ljust(100)


def _spec_settings(path: str | None) -> dict:
    """--network-spec FILE: the custom network's layers, from a list of layers, an object
    with "layers" (a spec the Train page exported) or a run's run.json."""
    if not path:
        return {}
    from fmnist.messages import first_line
    from fmnist.network_spec import SpecError, from_json
    from fmnist.networks import CUSTOM

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"cannot read the network spec {path}: {first_line(error)}") from None
    return {"network": CUSTOM, "layers": from_json(text)}


def cmd_train(args: argparse.Namespace) -> int:
    from fmnist import runs
    from fmnist.client import new_token
    from fmnist.jobs.store import JobStore, Worker
    from fmnist.jobs.worker import run_job
    from fmnist.schema import JobState, TrainConfig

    settings = vars(args) | {
        **_spec_settings(args.network_spec),
        "devices": tuple(args.devices.split(",")) if args.devices else (),
        "augment": tuple(filter(None, (a.strip() for a in args.augment.split(",")))),
        "command": args.command_line,
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
        return EXIT_FAILED
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
    return EXIT_OK


# --- evaluate -----------------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    # The run is found before TensorFlow loads: a wrong name fails at once.
    record = _chosen_run(args.run)
    run_id = record["run_id"]
    # The command line is not the web server: it may load TensorFlow itself,
    # through the same code as the inference service.
    from fmnist import data, evaluation
    from fmnist.ml import inference

    model = inference.load_run_model(run_id)
    dataset = data.load_dataset()
    probabilities = inference.predict_probabilities(model, dataset.x_test)
    matrix = evaluation.confusion_matrix(dataset.y_test, probabilities.argmax(axis=1))
    accuracy = evaluation.accuracy(matrix)
    if args.json:
        _print_json(
            {
                "run_id": run_id,
                "network": record["network"],
                "test_accuracy": accuracy,
                "confusion_matrix": matrix.tolist(),
            }
        )
        return EXIT_OK
    scored = f"test accuracy {accuracy:.4f} on {matrix.sum():,} images"
    print(f"{run_id} ({record['network']}): {scored}")
    print()
    print("Confusion matrix - rows: true class, columns: predicted class")
    print(" " * 12 + " ".join(f"{name:>8}" for name in data.CLASS_SHORT_NAMES))
    for name, row in zip(data.CLASS_NAMES, matrix, strict=True):
        print(f"{name:<12}" + " ".join(f"{v:8d}" for v in row))
    return EXIT_OK


# --- predict ------------------------------------------------------------------------------------


def cmd_predict(args: argparse.Namespace) -> int:
    if args.model:
        used: dict[str, Any] = {"file": str(Path(args.model).resolve())}
        said = args.model
    else:
        record = _chosen_run(args.run)
        used = {
            "run_id": record["run_id"],
            "network": record["network"],
            "test_accuracy": record.get("test_accuracy"),
        }
        said = _describe_run(record)
    if not args.json:
        print(f"model: {said}", file=sys.stderr, flush=True)

    from fmnist import imaging, predictor
    from fmnist.ml import inference

    model = inference.load(run_id=used.get("run_id"), model_file=args.model)
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
        # A list as before, one object per file; "model" is the same in each.
        _print_json(
            [{k: v for k, v in r.items() if k != "top3"} | {"model": used} for r in results]
        )
    else:
        for item in results:
            if "error" in item:
                print(f"{item['file']}: {item['error']}")
            else:
                print(f"{item['file']}: {item['class_name']} ({item['confidence']:.1%})")
    # Every file is answered; the status says whether every one got a class.
    return EXIT_FAILED if any("error" in item for item in results) else EXIT_OK


# --- the parser ---------------------------------------------------------------------------------


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: ...)" to an option's help wherever the default tells something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            not action.option_strings
            or action.default is None
            or action.default is False
            or action.default in ("", argparse.SUPPRESS)
            or "default" in text
        ):
            return text
        return f"{text} (default: %(default)s)"


def program_name() -> str:
    """How the user started us: `fmnist` (the installed command) or `python -m fmnist`."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return script if script and script not in ("__main__.py", "-c") else "python -m fmnist"


def build_parser(prog: str = "python -m fmnist") -> argparse.ArgumentParser:
    from fmnist.networks import NETWORKS
    from fmnist.schema import AUGMENTATIONS, LR_SCHEDULES, OPTIMIZERS, TrainConfig

    defaults = TrainConfig()
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "--verbose",
        action="store_true",
        # On a sub-command: not given there keeps what was given before it.
        default=argparse.SUPPRESS,
        help="show TensorFlow's own log lines (hidden otherwise)",
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Fashion-MNIST Studio in a terminal: the dataset, training, saved runs "
        "and predictions, with the same code as the web app.",
        formatter_class=_HelpFormatter,
        epilog=f"'{prog} COMMAND --help' describes each command.",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own log lines (hidden otherwise)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str, epilog: str | None = None) -> Any:
        return sub.add_parser(
            name,
            help=summary,
            description=description,
            epilog=epilog,
            parents=[verbose],
            formatter_class=_HelpFormatter,
        )

    json_help = "print JSON on stdout instead of text"

    info = command(
        "info",
        "dataset source and counts, TensorFlow version, devices",
        "Where the dataset comes from, how many images it has, the TensorFlow version and "
        "the devices (GPUs the NVIDIA driver reports, else the CPU). Does not load TensorFlow.",
    )
    info.add_argument("--json", action="store_true", help=json_help)
    info.set_defaults(func=cmd_info)

    runs_parser = command(
        "runs",
        "list the saved runs",
        "The saved runs, newest first: id, name, network, test accuracy, epochs and when "
        "they finished. The best one (marked *) is what evaluate and predict use by default.",
    )
    runs_parser.add_argument("--json", action="store_true", help=json_help)
    runs_parser.set_defaults(func=cmd_runs)

    networks = "; ".join(f"{n.name}: {n.description.rstrip('.')}" for n in NETWORKS.values())
    train = command(
        "train",
        "train a network and save the run",
        "Train a network on Fashion-MNIST with a progress bar, then save the run (model.keras "
        "and run.json) in the models folder. Ctrl-C stops after the current batch and keeps "
        "the run, marked stopped.",
        epilog=f"Networks: {networks}.",
    )
    train.add_argument(
        "--network", choices=list(NETWORKS), default=defaults.network, help="the network to train"
    )
    train.add_argument(
        "--network-spec",
        default=None,
        metavar="FILE.json",
        help="train your own network instead: a JSON list of layers, or a run.json whose "
        "network to train again (the Train page's builder shows the format)",
    )
    train.add_argument(
        "--epochs", type=int, default=defaults.epochs, help="passes over the training images"
    )
    train.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="images per training step"
    )
    train.add_argument(
        "--learning-rate",
        type=float,
        default=defaults.learning_rate,
        help="the optimizer's (starting) learning rate",
    )
    train.add_argument(
        "--optimizer", choices=OPTIMIZERS, default=defaults.optimizer, help="the optimizer"
    )
    train.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=defaults.lr_schedule,
        help="constant; cosine: lowered smoothly to 1 percent by the last batch; one-cycle: "
        "up from 1/25 of the rate over the first quarter, then down along a cosine to nearly 0",
    )
    train.add_argument(
        "--label-smoothing",
        type=float,
        default=defaults.label_smoothing,
        metavar="SHARE",
        help="spread this share of each target over all classes (0 to 0.3; 0.1 is usual)",
    )
    train.add_argument(
        "--augment",
        default=",".join(defaults.augment),
        metavar="LIST",
        help=f"comma-separated augmentations of the training images: {', '.join(AUGMENTATIONS)} "
        "(a mirror, a shift of up to 2 pixels, a grey box over half the pictures, a rotation "
        "of up to 10 degrees, a zoom of up to 10%%); a strength after a colon changes those "
        "numbers: shift:1-6, erase:10-100, rotate:2-45, zoom:2-40 (flip,shift:3,rotate:20)",
    )
    train.add_argument(
        "--validation-split",
        type=float,
        default=defaults.validation_split,
        help="share of the training images held out to validate each epoch (0 to 0.5)",
    )
    train.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="random seed: the same seed and settings give the same run",
    )
    train.add_argument(
        "--early-stopping",
        dest="early_stopping_patience",
        type=int,
        default=defaults.early_stopping_patience,
        metavar="PATIENCE",
        help="stop when the validation loss has not improved for PATIENCE epochs (0: never)",
    )
    train.add_argument(
        "--limit",
        type=int,
        default=defaults.limit,
        metavar="N",
        help="train on at most N images, at least 100 (0: all 60,000)",
    )
    train.add_argument(
        "--mixed-precision",
        action="store_true",
        help="compute in 16 bits where the device has it: bfloat16 on CPUs with AVX-512 "
        "BF16 or AMX and on Ampere and later GPUs, float16 on older GPUs (off by default)",
    )
    train.add_argument(
        "--name", default=defaults.name, help="a name for the run, part of its id (default: none)"
    )
    train.add_argument(
        "--devices",
        default="",
        help="comma-separated devices to train on, e.g. /gpu:0,/gpu:1 "
        "(default: every GPU, else the CPU)",
    )
    train.add_argument(
        "--json", action="store_true", help="no progress bar; print the result as JSON on stdout"
    )
    train.set_defaults(func=cmd_train)

    run_help = (
        "the run: its id, any unique start of its id, or its name "
        "(default: the best run by test accuracy)"
    )
    evaluate = command(
        "evaluate",
        "test accuracy and confusion matrix of a run",
        "Classify the 10,000 test images with a saved run and print its test accuracy and "
        "confusion matrix (rows: true class, columns: predicted class).",
    )
    evaluate.add_argument("--run", default=None, help=run_help)
    evaluate.add_argument("--json", action="store_true", help=json_help)
    evaluate.set_defaults(func=cmd_evaluate)

    predict = command(
        "predict",
        "classify picture files",
        "Classify picture files (PNG, JPEG, ...) with a saved run or a .keras file, through "
        "the same preprocessing as the Predict page. The model used is named on stderr (in "
        "JSON: the 'model' key of each result).",
        epilog="Exit status: 0 when every file got a class; 1 when any file could not be "
        "classified (missing, unreadable, or not a usable picture), after printing the "
        "results of all of them; 2 for unusable arguments (unknown run, bad model file).",
    )
    chosen = predict.add_mutually_exclusive_group()
    chosen.add_argument("--run", default=None, help=run_help)
    chosen.add_argument(
        "--model", default=None, metavar="FILE.keras", help="a .keras file instead of a run"
    )
    predict.add_argument("files", nargs="+", metavar="FILE", help="pictures to classify")
    predict.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list on stdout: one object per file, in order",
    )
    predict.set_defaults(func=cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status.

    Unless --verbose is given, this also sends the process's file descriptor 2
    to /dev/null for good (see _hide_native_stderr): it is the program's entry
    point, not a function to call inside another program.
    """
    prog = program_name()
    args = build_parser(prog).parse_args(argv)
    args.command_line = f"{prog} " + shlex.join(sys.argv[1:] if argv is None else argv)
    if not args.verbose:
        # TensorFlow's own logging stays quiet too; --verbose leaves it as the user set it.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        _hide_native_stderr()
    try:
        return int(args.func(args))
    except ValueError as error:  # bad hyper-parameters
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # DataError, RunError, ModelError: one line, no traceback
        from fmnist.data import DataError
        from fmnist.inference_protocol import ModelError
        from fmnist.runs import RunError

        if isinstance(error, (DataError, RunError, ModelError)):
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    sys.exit(main())
