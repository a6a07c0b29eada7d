"""`python -m fmnist` as a user runs it: a fresh process, JSON on stdout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fmnist import evaluation, hardware, network_spec
from fmnist.__main__ import _progress_line, build_parser
from fmnist.jobs.store import JobStore
from fmnist.schema import JobState, JobView, TrainConfig

from .conftest import PROJECT_ROOT, copy_shipped_runs
from .test_imaging import boot_picture, encode

# What TensorFlow's C++ writes straight to file descriptor 2 when it starts.
NATIVE_CHATTER = ("I0000", "E0000", "W0000", "absl")
INFO_KEYS = {"dataset_path", "dataset_source", "train_count", "test_count", "tensorflow", "devices"}


def run_env(models_dir: Path | None = None) -> dict[str, str]:
    # No PYTHONPATH: the project is installed (editable) in the venv, as make does it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if models_dir is not None:
        env["FMNIST_MODELS_DIR"] = str(models_dir)
    return env


def fmnist(
    *args: str, models_dir: Path | None = None, cwd: Path = PROJECT_ROOT
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fmnist", *args],
        capture_output=True,
        text=True,
        env=run_env(models_dir),
        cwd=cwd,
        timeout=600,
        check=False,
    )


def python(script: str, *args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        env=run_env(),
        cwd=cwd,
        timeout=600,
        check=False,
    )


SECOND_RUN = "20261208-150000-fast-wide-second-ffff"  # newer than the shipped run


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    """The shipped run (named "default", the best) and a copy named "second", scored lower."""
    models = tmp_path / "models"
    copy_shipped_runs(models)
    (shipped,) = [p for p in models.iterdir() if p.is_dir()]
    second = models / SECOND_RUN
    shutil.copytree(shipped, second)
    record = json.loads((second / "run.json").read_text())
    record |= {
        "run_id": SECOND_RUN,
        "name": "second",
        "test_accuracy": 0.9,
        "finished_at": "2026-12-08T15:00:00",
        "shipped": False,
    }
    (second / "run.json").write_text(json.dumps(record))
    return models


def test_info_json() -> None:
    done = fmnist("info", "--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert (
        info["dataset_path"] == "/usr/share/datasets/fashion-mnist"
        or Path(info["dataset_path"]).is_dir()
    )
    assert (info["train_count"], info["test_count"]) == (60_000, 10_000)
    assert info["tensorflow"].startswith("2.")
    assert info["devices"] and all(isinstance(d, str) for d in info["devices"])


def test_train_then_evaluate(tmp_path: Path) -> None:
    done = fmnist(
        "train",
        "--network",
        "mlp",
        "--epochs",
        "1",
        "--limit",
        "3000",
        "--seed",
        "1",
        "--name",
        "cli test",
        "--json",
        models_dir=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # TensorFlow's start-up lines (written by C++ to descriptor 2) stay off the terminal.
    assert not [word for word in NATIVE_CHATTER if word in done.stderr], done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert set(result) >= {
        "run_id",
        "path",
        "network",
        "test_accuracy",
        "epochs_completed",
        "images_per_second",
    }
    assert result["network"] == "mlp" and result["epochs_completed"] == 1
    assert Path(result["path"]).parent == tmp_path
    record = json.loads((Path(result["path"]) / "run.json").read_text())
    assert record["command"].startswith("python -m fmnist train --network mlp")
    # The command line recorded its job in the same store the Train page reads.
    job = JobStore(tmp_path / ".jobs" / "jobs.sqlite3").get(result["job_id"])
    assert job is not None and job.source == "cli" and job.run_id == result["run_id"]
    assert job.state is JobState.DONE and [m.epoch for m in job.history] == [1]
    assert record["job_id"] == job.id

    # The run's name is enough to find it.
    done = fmnist("evaluate", "--run", "cli test", "--json", models_dir=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not [word for word in NATIVE_CHATTER if word in done.stderr], done.stderr[-2000:]
    scored = json.loads(done.stdout)
    assert scored["run_id"] == result["run_id"] and scored["network"] == "mlp"
    matrix = np.array(scored["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10_000
    assert scored["test_accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-6)
    assert evaluation.accuracy(matrix) == pytest.approx(scored["test_accuracy"])


def test_predict_json_with_good_and_bad_files(tmp_path: Path, shipped_run: dict) -> None:
    (tmp_path / "sneaker.png").write_bytes(encode(boot_picture(), "PNG"))
    (tmp_path / "notes.txt").write_text("not a picture")
    done = fmnist(
        "predict",
        str(tmp_path / "sneaker.png"),
        str(tmp_path / "notes.txt"),
        str(tmp_path / "missing.jpg"),
        "--json",
    )
    # Every file is answered, and the status says that two of them got no class.
    assert done.returncode == 1, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert [Path(r["file"]).name for r in results] == ["sneaker.png", "notes.txt", "missing.jpg"]
    # Without --run, the best run; each result says which model answered.
    best = {k: shipped_run[k] for k in ("run_id", "network", "test_accuracy")}
    assert all(r["model"] == best for r in results)
    first = results[0]
    assert set(first) >= {"file", "label", "class_name", "confidence", "probabilities"}
    assert len(first["probabilities"]) == 10
    assert sum(first["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert "not a picture" in results[1]["error"]
    assert "cannot read" in results[2]["error"]


def test_unusable_arguments_exit_non_zero(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(encode(boot_picture(), "PNG"))
    unknown_run = fmnist("predict", "--run", "no-such-run", str(tmp_path / "a.png"))
    assert unknown_run.returncode == 2 and "no run named" in unknown_run.stderr
    assert "Traceback" not in unknown_run.stderr
    bad_model = tmp_path / "bad.keras"
    bad_model.write_bytes(b"nope")
    refused = fmnist("predict", "--model", str(bad_model), str(tmp_path / "a.png"))
    assert refused.returncode != 0 and "not a .keras file" in refused.stderr
    bad_epochs = fmnist("train", "--epochs", "0", models_dir=tmp_path)
    assert bad_epochs.returncode == 2 and "epochs must be" in bad_epochs.stderr


def test_native_stderr_is_hidden_unless_verbose() -> None:
    """C++ writes to descriptor 2 vanish; our messages and Python tracebacks still show."""
    script = """
        import os, sys
        from fmnist.__main__ import main
        main(sys.argv[1:])
        os.write(2, b"native chatter\\n")  # what TensorFlow's C++ logging does
        print("our message", file=sys.stderr)
        raise RuntimeError("boom")
    """
    quiet = python(script, "runs", "--json")
    assert "native chatter" not in quiet.stderr
    assert "our message" in quiet.stderr
    assert "Traceback" in quiet.stderr and "RuntimeError: boom" in quiet.stderr
    assert quiet.returncode == 1 and json.loads(quiet.stdout) is not None
    for verbose in (["--verbose", "runs", "--json"], ["runs", "--verbose", "--json"]):
        loud = python(script, *verbose)
        assert "native chatter" in loud.stderr and "our message" in loud.stderr, verbose


def test_progress_line_says_what_happens_before_the_first_batch() -> None:
    config = TrainConfig(epochs=3)
    starting = JobView(id="j", config=config, state=JobState.RUNNING)
    assert "starting TensorFlow..." in _progress_line(starting)
    phased = JobView(id="j", config=config, state=JobState.RUNNING, phase="building the network")
    assert "building the network..." in _progress_line(phased)
    first = JobView(id="j", config=config, state=JobState.RUNNING, batches=100, batch=3)
    line = _progress_line(first)
    assert "epoch 1/3" in line and "img/s" not in line  # no "0 img/s" before it is known
    running = JobView(
        id="j", config=config, state=JobState.RUNNING, batches=100, batch=50, epoch=1,
        images_per_second=1234.0, eta=12.0,
    )  # fmt: skip
    assert "epoch 2/3" in _progress_line(running) and "1234 img/s" in _progress_line(running)
    testing = JobView(id="j", config=config, state=JobState.EVALUATING, batches=100, batch=100)
    assert "evaluating on the test images" in _progress_line(testing)


def test_info_does_not_import_tensorflow() -> None:
    script = """
        import sys
        from fmnist.__main__ import main
        status = main(["info", "--json"])
        sys.exit(3 if "tensorflow" in sys.modules or "keras" in sys.modules else status)
    """
    done = python(script)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads(done.stdout)
    assert set(info) == INFO_KEYS
    assert info["tensorflow"].startswith("2.")


def test_devices_come_from_the_nvidia_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert hardware.describe_devices(tmp_path / "absent")[0].startswith("CPU (")
    for number, model in enumerate(["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"]):
        folder = tmp_path / "gpus" / f"0000:0{number}:00.0"
        folder.mkdir(parents=True)
        (folder / "information").write_text(
            f"Model: \t\t {model}\nIRQ:   \t\t 42\nGPU UUID: \t GPU-{number}\n"
        )
    gpus = tmp_path / "gpus"
    assert hardware.describe_devices(gpus) == [
        "GPU 0: NVIDIA H100 80GB HBM3",
        "GPU 1: NVIDIA A100-SXM4-40GB",
    ]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert hardware.describe_devices(gpus) == ["GPU 0: NVIDIA A100-SXM4-40GB"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert hardware.describe_devices(gpus)[0].startswith("CPU (")


def test_a_cpu_with_bfloat16_arithmetic_is_named_and_offers_mixed_precision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    zen4, older, arm = tmp_path / "zen4", tmp_path / "older", tmp_path / "arm"
    zen4.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\n"
        "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 fma\n\n"
    )
    older.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f fma\n")
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert hardware.cpu_computes_bfloat16(zen4)
    assert not hardware.cpu_computes_bfloat16(older)
    assert not hardware.cpu_computes_bfloat16(arm)  # oneDNN's Arm bfloat16 is unmeasured
    assert not hardware.cpu_computes_bfloat16(tmp_path / "absent")
    assert hardware.cpu_description(zen4).endswith(", bfloat16)")
    assert "bfloat16" not in hardware.cpu_description(older)
    assert hardware.computes_16_bit([hardware.cpu_description(zen4)])
    assert hardware.computes_16_bit([hardware.cpu_description(older)]) is False
    assert hardware.computes_16_bit(["GPU 0: NVIDIA H100 80GB HBM3"])
    # Not known: nothing named yet, or a Ray cluster, whose machines decide for themselves.
    assert hardware.computes_16_bit([]) is None
    assert hardware.computes_16_bit(["Ray cluster: 8 CPUs, 1 GPUs, 2 trainings at once"]) is None
    # Without oneDNN, TensorFlow's kernels would emulate bfloat16: slower than float32.
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    assert not hardware.cpu_computes_bfloat16(zen4)


def test_train_help_describes_every_option_with_its_default() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    done = fmnist("train", "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for shown in (
        "--epochs EPOCHS passes over the training images (default: 5)",
        "(default: mlp)",
        "(default: 32)",
        "(default: 0.001)",
        "(default: adam)",
        "(default: constant)",
        "(default: 0.1)",
        "(default: 42)",
        "PATIENCE epochs (0: never) (default: 0)",
        "(0: all 60,000) (default: 0)",
        "--verbose",
        "one-cycle: up from 1/25 of the rate",
        "--label-smoothing SHARE",
        "--augment LIST",
    ):
        assert shown in text, shown


def test_an_unknown_augmentation_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = fmnist("train", "--augment", "flip,blur", "--epochs", "1", models_dir=tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].endswith(
        "unknown augmentation 'blur'; choose from flip, shift, erase, rotate, zoom"
    )
    assert "Traceback" not in done.stderr and not list(tmp_path.iterdir())


def test_network_spec_trains_your_own_network_and_a_run_json_trains_it_again(
    tmp_path: Path,
) -> None:
    spec = [
        {"type": "conv", "filters": 6, "kernel": 5, "padding": "valid"},
        {"type": "maxpool", "size": 4},
        {"type": "flatten"},
        {"type": "dense", "units": 20},
    ]
    parameters = (5 * 5 * 6 + 6) + (6 * 6 * 6 * 20 + 20) + (20 * 10 + 10)
    spec_file = tmp_path / "mine.json"
    spec_file.write_text(json.dumps(spec))
    models = tmp_path / "models"
    common = ("--epochs", "1", "--limit", "1000", "--json")
    done = fmnist("train", "--network-spec", str(spec_file), *common, models_dir=models)
    assert done.returncode == 0, done.stderr[-2000:]
    first = json.loads((Path(json.loads(done.stdout)["path"]) / "run.json").read_text())
    assert first["network"] == "custom" and first["parameters"] == parameters
    assert first["config"]["layers"] == first["layers"] == network_spec.clean(spec)
    assert "--network-spec" in first["command"]

    # The run's own run.json is a spec: the same network, trained again.
    run_json = models / first["run_id"] / "run.json"
    again = fmnist("train", "--network-spec", str(run_json), *common, models_dir=models)
    assert again.returncode == 0, again.stderr[-2000:]
    second = json.loads((Path(json.loads(again.stdout)["path"]) / "run.json").read_text())
    assert second["layers"] == first["layers"] and second["parameters"] == parameters

    spec_file.write_text(json.dumps([{"type": "dense", "units": 8}]))
    refused = fmnist("train", "--network-spec", str(spec_file), *common, models_dir=models)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: layer 1 (Dense) needs a vector, but its input is 28x28x1 maps: "
        "put a Flatten or a GlobalAveragePooling2D before it"
    )


def test_runs_lists_saved_runs_and_names_pick_one(two_runs: Path, shipped_run: dict) -> None:
    listed = fmnist("runs", "--json", models_dir=two_runs)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [row["run_id"] for row in rows] == [SECOND_RUN, shipped_run["run_id"]]  # newest first
    assert set(rows[0]) >= {
        "run_id", "name", "network", "test_accuracy", "epochs_completed", "finished_at", "best",
    }  # fmt: skip
    assert [row["best"] for row in rows] == [False, True]
    assert rows[0]["name"] == "second" and rows[0]["test_accuracy"] == 0.9
    table = fmnist("runs", models_dir=two_runs)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["RUN", "NAME", "NETWORK", "TEST", "ACC", "EPOCHS", "FINISHED"]
    assert lines[1].split()[:4] == [SECOND_RUN, "second", "fast-wide", "90.00%"]
    assert lines[2].split()[:3] == ["*", shipped_run["run_id"], shipped_run["name"]]

    # Ambiguous or unknown: one line, status 2, before TensorFlow is even loaded.
    for text, says in (
        ("2026", "matches 2 runs"),
        ("cnn-bn", "no run named 'cnn-bn'"),
        ("no-such-run", "no run named"),
    ):
        refused = fmnist("evaluate", "--run", text, models_dir=two_runs)
        assert refused.returncode == 2, (text, refused.stderr)
        assert says in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, text
    empty = two_runs.parent / "empty"
    empty.mkdir()
    nothing = fmnist("evaluate", models_dir=empty)
    assert nothing.returncode == 2 and "no saved run yet" in nothing.stderr


def test_evaluate_defaults_to_the_best_run_with_a_readable_matrix(
    two_runs: Path, shipped_run: dict
) -> None:
    done = fmnist("evaluate", models_dir=two_runs)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    shipped = f"{shipped_run['run_id']} ({shipped_run['network']}): test accuracy 0.9"
    assert lines[0].startswith(shipped)
    assert "rows: true class, columns: predicted class" in done.stdout
    header = next(line for line in lines if "Pullover" in line and "T-shirt" in line)
    assert header.split() == [
        "T-shirt", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Boot",
    ]  # fmt: skip
    rows = lines[lines.index(header) + 1 :]
    assert [row[:12].strip() for row in rows] == [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]  # fmt: skip
    matrix = np.array([[int(v) for v in row[12:].split()] for row in rows])
    assert matrix.shape == (10, 10) and list(matrix.sum(axis=1)) == [1000] * 10
    assert evaluation.accuracy(matrix) == pytest.approx(shipped_run["test_accuracy"], abs=0.002)


def test_predict_names_its_model_and_takes_a_run_prefix(two_runs: Path, tmp_path: Path) -> None:
    (tmp_path / "boot.png").write_bytes(encode(boot_picture(), "PNG"))
    done = fmnist(
        "predict", "--run", "20261208-15", str(tmp_path / "boot.png"), models_dir=two_runs
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"model: {SECOND_RUN} (fast-wide, test accuracy 90.00%)" in done.stderr
    assert not [word for word in NATIVE_CHATTER if word in done.stderr], done.stderr[-2000:]
    assert done.stdout.startswith(f"{tmp_path / 'boot.png'}: ")
    assert "model:" not in done.stdout


def test_installed_command_works_outside_the_repository(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("fmnist")
    assert script.is_file(), "the project is not installed in the venv: run make (pip install -e .)"
    for command in ([str(script)], [sys.executable, "-m", "fmnist"]):
        done = subprocess.run(
            [*command, "info", "--json"],
            capture_output=True,
            text=True,
            env=run_env(),
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (command, done.stderr[-2000:])
        assert set(json.loads(done.stdout)) == INFO_KEYS
