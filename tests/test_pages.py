"""Every page through Streamlit's AppTest: it renders, and its main interaction works."""

from __future__ import annotations

import ast
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fmnist import hardware
from fmnist.data import Dataset
from fmnist.jobs.store import JobStore, Worker
from fmnist.schema import JobState, TrainConfig

from .conftest import PROJECT_ROOT, copy_shipped_runs
from .test_imaging import boot_picture, encode

MAP = "fmnist_point_map"  # the map of images: a component of our own (fmnist.ui.point_map)
PICTURE = "fmnist_pixel_picture"  # Explore's inspected image (fmnist.ui.pixel_picture)

TIMEOUT = 120


def open_page(path: str) -> AppTest:
    # Start from the entry point, as a browser session does, so that page links
    # resolve against app.py.
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=TIMEOUT)
    if path != "app.py":
        app.switch_page(path)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


@pytest.fixture
def with_shipped_runs(models_dir: Path) -> Path:
    copy_shipped_runs(models_dir)
    return models_dir


def test_home(with_shipped_runs: Path) -> None:
    app = open_page("app.py")
    assert app.title[0].value.endswith("Fashion-MNIST Studio")
    texts = " ".join(s.value for s in app.success) + " ".join(i.value for i in app.info)
    assert "60,000 training and 10,000 test images" in texts
    assert "1 saved run.** Best:" in texts  # one shipped run, and the word in the singular
    # The devices are named by the inference service, which may still be
    # starting on the first run ("detecting…"); a later run shows them.
    deadline = time.time() + TIMEOUT
    while "CPU" not in texts and "GPU" not in texts:
        assert "Compute:** detecting" in texts, texts
        assert time.time() < deadline, "the devices were never named"
        time.sleep(0.2)
        app.run()
        assert not app.exception
        texts = " ".join(i.value for i in app.info)
    assert "Compute:" in texts


def test_a_dataset_loaded_by_any_page_is_seen_at_once_by_predicts_test_set_tabs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fmnist import data, ui

    loaded = object()
    answers: list[object] = [data.DataError("train-images cut short"), loaded]

    def load() -> object:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(ui, "_dataset", load)
    monkeypatch.setattr(ui, "_warm_up_explore", lambda ds: None)
    monkeypatch.setattr(ui._DataFailure, "at", None)
    assert ui.dataset_or_none() is None  # broken: Predict's test-set tabs say so
    # The copy is fixed; Explore or Train loads it through ui.dataset() ...
    assert ui.dataset() is loaded
    # ... and Predict's tabs have it on their next run, not 30 s later.
    assert ui.dataset_or_none() is loaded


def test_explore_draws_its_charts_and_inspects_an_image(dataset: Dataset) -> None:
    app = open_page("pages/1_Explore.py")
    # The first tab: the sample grid (one picture per column) and the class table.
    grids = [h.proto.body for h in app.get("html") if "fmnist-grid" in h.proto.body]
    assert len(grids) == 1 and grids[0].count("<img ") == 16
    assert not app.get("plotly_chart")
    assert any("| 9 | Ankle boot | 6,000 | 1,000 |" in m.value for m in app.markdown)
    maps = 0
    for tab in ("📊 Pixel intensities", "🧥 Average garments", "🔬 One image and the map"):
        app.session_state["explore_tab"] = tab  # tabs are lazy: only the open one runs
        app.run()
        assert not app.get("plotly_chart")  # the browser never loads Plotly for Explore
        maps += len([m for m in app.get("bidi_component") if m.proto.component_name == MAP])
        assert not app.get("image")
        bodies = [h.proto.body for h in app.get("html")]
        if tab == "📊 Pixel intensities":  # SVG panels in HTML
            assert [b.count('src="data:image/svg+xml;base64,') for b in bodies] == [10]
        if tab == "🧥 Average garments":  # two grids of ten pictures and their scales
            assert [b.count("<img ") for b in bodies if "fmnist-grid" in b] == [10, 10]
        if tab == "🔬 One image and the map":  # the map, and the inspected image's pixels
            assert not [b for b in bodies if "fmnist-pixels" in b]  # its values: on request
            drawn = {m.proto.component_name: m for m in app.get("bidi_component")}
            picture = json.loads(drawn[PICTURE].proto.bytes)
            assert picture["pixels"] == dataset.x_train[0].ravel().tolist()
            assert picture["title"] == "#0: Ankle boot"
            points = json.loads(drawn[MAP].proto.bytes)
            assert len(points["x"]) == len(set(points["index"])) == 3000  # the default size
            assert points["picked"] == 0  # the inspected image, ringed
    assert maps == 1
    app.number_input(key="explore_index").set_value(123).run()
    assert any("**Index:** 123" in m.value for m in app.markdown)
    (picture,) = [m for m in app.get("bidi_component") if m.proto.component_name == PICTURE]
    assert json.loads(picture.proto.bytes)["pixels"] == dataset.x_train[123].ravel().tolist()
    # Past the end: brought back to the last image, with one line giving the range.
    app.number_input(key="explore_index").set_value(99999).run()
    assert app.number_input(key="explore_index").value == 59999
    assert [w.value for w in app.warning] == [
        "There is no training image #99,999: they are numbered 0–59,999. "
        "Showing #59,999, the last one."
    ]
    app.toggle(key="explore_values").set_value(True).run()
    tables = [h.proto.body for h in app.get("html") if "fmnist-pixels" in h.proto.body]
    assert len(tables) == 1 and ">255</td>" in tables[0]  # the numbers, below
    app.session_state["explore_tab"] = "📊 Pixel intensities"
    app.run()
    app.toggle(key="explore_log").set_value(True).run()
    app.session_state["explore_tab"] = "👕 Classes and samples"
    app.run()
    app.pills(key="explore_classes").set_value(["Bag"]).run()
    app.selectbox(key="explore_count").set_value(32).run()
    # Every tab's settings come back with it, though its widgets were not drawn meanwhile.
    for tab in ("📊 Pixel intensities", "🔬 One image and the map", "👕 Classes and samples"):
        app.session_state["explore_tab"] = tab
        app.run()
    assert app.pills(key="explore_classes").value == ["Bag"]
    assert app.selectbox(key="explore_count").value == 32
    app.session_state["explore_tab"] = "🔬 One image and the map"
    app.run()
    assert app.number_input(key="explore_index").value == 59999
    assert app.toggle(key="explore_values").value is True
    app.session_state["explore_tab"] = "📊 Pixel intensities"
    app.run()
    assert app.toggle(key="explore_log").value is True
    assert not app.exception


def test_explore_does_not_import_tensorflow() -> None:
    # switch_page before the first run: app.py itself never runs, as for a user
    # who opens /Explore directly. Explore needs no model, so it does not even
    # start the inference service.
    script = (
        "import sys; from streamlit.testing.v1 import AppTest; "
        "from fmnist import inference_client; "
        f"app = AppTest.from_file({str(PROJECT_ROOT / 'app.py')!r}, default_timeout=120); "
        "app.switch_page('pages/1_Explore.py'); app.run(); "
        "assert not app.exception, [e.value for e in app.exception]; "
        "app.session_state['explore_tab'] = '🔬 One image and the map'; app.run(); "
        "assert len(app.get('bidi_component')) == 2 and not app.get('plotly_chart'); "
        "assert inference_client.service_pid() is None; "
        # Nor pandas, 0.4 s to import: Streamlit's look for data frames in a component's
        # data (a dict) imported it; the maps send theirs as JSON bytes.
        "print('pandas' in sys.modules, 'tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False False"


def run_python(script: str) -> subprocess.CompletedProcess:
    """``script`` in a Python process of its own, from the project's root; it must succeed."""
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=PROJECT_ROOT,
        timeout=120, check=True,
    )  # fmt: skip


def last_line_printed(script: str) -> str:
    """What ``script``, run by run_python, printed last."""
    return run_python(script).stdout.strip().splitlines()[-1]


def test_the_server_imports_the_pages_modules_before_it_opens_but_never_tensorflow() -> None:
    # fmnist.ui.server (`make run`): the first page's imports at start-up, not at its first visit.
    script = (
        "import sys; from fmnist.ui import server; server.warm_up(); print(sorted(name for name "
        "in ('numpy', 'streamlit.emojis', 'fmnist.ui', 'fmnist.charts', 'tensorflow', 'keras') "
        "if name in sys.modules))"
    )
    imported = last_line_printed(script)
    assert imported == "['fmnist.charts', 'fmnist.ui', 'numpy', 'streamlit.emojis']"


def test_the_server_starts_streamlit_with_the_imports_done_and_nagle_off() -> None:
    script = (
        "from streamlit.web import cli; from fmnist.ui import server\n"
        "from streamlit.web.server.starlette import starlette_server as s\n"
        "cli.main = lambda args, prog_name: print(args, prog_name, s._bind_socket.without_delay)\n"
        "server.main(['--server.port', '8999'])"
    )
    started = last_line_printed(script)
    assert started == "['run', 'app.py', '--server.port', '8999'] streamlit True"


def test_the_server_loads_the_dataset_before_it_opens(dataset: Dataset) -> None:
    script = (
        "from fmnist import data, ui; from fmnist.ui import server\n"
        "load, calls = data.load_dataset, []\n"
        "data.load_dataset = lambda: calls.append(1) or load()\n"
        "server.warm_up(); print(len(calls))\n"
        "assert ui.dataset_or_none().x_train.shape == (60000, 28, 28); print(len(calls))"
    )
    done = run_python(script)
    # Loaded once, at start-up; the pages' first call finds it in the shared cache.
    assert done.stdout.split() == ["1", "1"]
    assert "ScriptRunContext" not in done.stderr  # no warning in the server's console


def test_the_servers_connections_send_each_response_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamlit.web.server.starlette import starlette_server

    from fmnist.ui import server

    original = starlette_server._bind_socket
    monkeypatch.setattr(starlette_server, "_bind_socket", original)  # put back afterwards
    server.serve_without_delay()
    server.serve_without_delay()  # a second call changes nothing
    assert starlette_server._bind_socket is not original
    # Streamlit's own listening socket leaves Nagle's algorithm on for the connections it
    # accepts (asyncio turns it off only for sockets created as TCP): a response after
    # the first on a kept-alive connection then waited ~40 ms for the client's ACK.
    for bind, without_delay in ((original, False), (starlette_server._bind_socket, True)):
        listener = bind("127.0.0.1", 0, 8)
        with listener, socket.create_connection(listener.getsockname()):
            listener.setblocking(True)
            accepted, _ = listener.accept()
            with accepted:
                option = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert bool(option) is without_delay


def magic_writes(source: str) -> int:
    """How many things Streamlit's "magic" would draw in ``source`` (bare expressions)."""
    from streamlit.runtime.scriptrunner import magic

    return ast.dump(magic.add_magic(source, "page.py")).count("transparent_write")


def test_magic_is_off_and_no_page_counted_on_it() -> None:
    # Magic cost each page's first run a rewrite of its syntax tree (95 ms of Train's on a
    # just-started server). Off, a bare expression in a page would silently draw nothing.
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["magicEnabled"] is False
    assert magic_writes("import streamlit as st\nx = 3\nx\n") == 1  # the check can see one
    for page in [PROJECT_ROOT / "app.py", *sorted((PROJECT_ROOT / "pages").glob("*.py"))]:
        assert magic_writes(page.read_text()) == 0, page.name


def test_home_and_predict_never_import_tensorflow(
    with_shipped_runs: Path, shipped_run: dict
) -> None:
    # The web server's process: Streamlit clears the Keras session after every
    # run once Keras is loaded. The models live in the inference service.
    script = f"""
import json, sys, time
from streamlit.testing.v1 import AppTest
from fmnist import config
from tests.test_imaging import boot_picture, encode

config.MODELS_DIR = config.Path({str(with_shipped_runs)!r})
# The first run pays for imports and the dataset, as a server does once at its start.
AppTest.from_file({str(PROJECT_ROOT / "app.py")!r}, default_timeout=120).run()
home = AppTest.from_file({str(PROJECT_ROOT / "app.py")!r}, default_timeout=120)
started = time.perf_counter()
home.run()
home_s = time.perf_counter() - started
assert not home.exception, [e.value for e in home.exception]
predict = AppTest.from_file({str(PROJECT_ROOT / "app.py")!r}, default_timeout=120)
predict.switch_page("pages/3_Predict.py")
predict.run()
predict.file_uploader(key="predict_uploads").set_value(
    [("ankle-boot.png", encode(boot_picture(), "PNG"), "image/png")]
).run()
assert not predict.exception, [e.value for e in predict.exception]
predict.session_state["predict_tab"] = "🧮 Confusion matrix"  # tabs are lazy
predict.run()
accuracy = [m.value for m in predict.metric if m.label == "Test accuracy"]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
print(json.dumps({{"home_s": home_s, "accuracy": accuracy, "loaded": loaded}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["loaded"] == []
    assert answer["accuracy"] == [f"{shipped_run['test_accuracy']:.2%}"]
    # How fast Home opens is measured by `make bench`, not asserted in a test.


def test_train_page_trains_in_a_worker_and_lists_the_run(models_dir: Path) -> None:
    app = open_page("pages/2_Train.py")
    assert "101,770 parameters" in " ".join(c.value for c in app.caption)
    # The layer table: one row per layer with its output shape, and the total.
    layers = next(m.value for m in app.markdown if m.value.startswith("| layer |"))
    assert "| dense | Dense | (batch, 128) | 100,480 |" in layers
    assert layers.endswith("| **total** | | | **101,770** |")
    app.selectbox(key="train_limit").set_value("2,000")
    app.number_input(key="train_epochs").set_value(1)
    app.session_state["train_mixed"] = True  # "More settings" is not drawn yet
    next(b for b in app.button if "Start training" in b.label).click().run()
    assert not app.exception
    job_id, key = app.query_params["job"], app.query_params["key"]
    job = JobStore().get(job_id)
    assert job is not None and job.config.limit == 2000 and job.config.epochs == 1
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        app.run()
        if any("**done**" in m.value for m in app.markdown):
            break
        time.sleep(0.5)
    assert any("**done**" in m.value for m in app.markdown), "training did not finish"
    app.run()
    assert len(list(models_dir.glob("*/run.json"))) == 1
    assert app.dataframe, "the runs table is missing"
    assert list(app.dataframe[0].value["network"]) == ["mlp"]
    # The table says what the run computed in: 16 bits where this CPU has bfloat16.
    sixteen_bit = hardware.cpu_computes_bfloat16()
    assert list(app.dataframe[0].value["extras"]) == ["16-bit" if sixteen_bit else ""]
    assert JobStore().owns(job_id, key)


def test_a_link_fills_the_form_even_with_values_outside_its_lists(models_dir: Path) -> None:
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=TIMEOUT)
    app.switch_page("pages/2_Train.py")
    link = {"network": "cnn", "epochs": "300", "batch": "100", "images": "1234",
            "validation": "0.4", "lr": "0.0007", "seed": "77",
            "augment": "zoom:25,flip"}  # fmt: skip
    app.query_params.update(link)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="train_limit").value == "1,234"
    assert app.selectbox(key="train_batch").value == 100
    assert app.number_input(key="train_epochs").value == 300
    # "More settings" is closed and its widgets are not drawn yet (a first load's browser
    # is spared them): Start takes the link's values there from the session.
    assert "train_seed" not in [n.key for n in app.number_input]
    # Start with exactly these settings; a bad link says which setting in one line.
    next(b for b in app.button if "Start training" in b.label).click().run()
    assert not app.exception, [e.value for e in app.exception]
    job = JobStore().get(app.query_params["job"])
    assert job is not None
    assert (job.config.limit, job.config.batch_size, job.config.epochs) == (1234, 100, 300)
    assert (job.config.validation_split, job.config.learning_rate, job.config.seed) == (
        0.4, 0.0007, 77,
    )  # fmt: skip
    assert job.config.augment == ("flip", "zoom:25")
    JobStore().request_stop(job.id)
    app.session_state["train_more_open"] = True  # opened: its widgets show the same values
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.number_input(key="train_seed").value == 77
    assert app.slider(key="train_strength_zoom").value == 25
    assert app.slider(key="train_strength_shift").value == 2  # the default: not in the link

    bad = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=TIMEOUT)
    bad.switch_page("pages/2_Train.py")
    bad.query_params.update({"epochs": "many", "layers": "conv-inf"})
    bad.run()
    assert not bad.exception
    assert [w.value.replace("\\", "") for w in bad.warning] == [  # markdown escapes
        "This link's settings cannot be used: epochs must be a number, not 'many'"
    ]


def test_the_train_forms_settings_outlive_a_visit_to_another_page(models_dir: Path) -> None:
    app = open_page("pages/2_Train.py")
    app.session_state["train_more_open"] = True
    app.run()
    app.number_input(key="train_epochs").set_value(7)
    app.number_input(key="train_seed").set_value(1234)
    next(b for b in app.button if "Copy link" in b.label).click().run()  # sends the form
    assert (
        app.number_input(key="train_epochs").value,
        app.number_input(key="train_seed").value,
    ) == (7, 1234)
    app.switch_page("pages/1_Explore.py").run()
    app.switch_page("pages/2_Train.py").run()
    assert not app.exception, [e.value for e in app.exception]
    # Streamlit had dropped them with the other page's run: the form showed 1 epoch, seed 0.
    assert app.number_input(key="train_epochs").value == 7
    assert app.number_input(key="train_seed").value == 1234
    assert app.selectbox(key="train_network").value == "mlp"


def test_only_the_operator_sees_and_stops_other_peoples_jobs(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FMNIST_ADMIN_TOKEN", "operator-secret")
    store = JobStore()
    # Somebody else's training, running in a process that is alive (this one).
    job_id = store.create(TrainConfig(network="cnn", epochs=3), "their-secret")
    store.claim_next(Worker.this_process(), job_id)

    visitor = open_page("pages/2_Train.py")
    assert any("1 training running" in i.value for i in visitor.info)
    assert not visitor.expander or "Operator" not in str([e.label for e in visitor.expander])
    visitor.query_params["job"] = job_id  # the job id without its key
    visitor.run()
    assert not [b for b in visitor.button if "Stop" in b.label]

    operator = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=TIMEOUT)
    operator.switch_page("pages/2_Train.py")
    operator.query_params["admin"] = "operator-secret"
    operator.run()
    assert not operator.exception, [e.value for e in operator.exception]
    stop = next(b for b in operator.button if b.key == f"train_admin_stop_{job_id}")
    stop.click().run()
    assert store.get(job_id).state is JobState.STOPPING
    assert "admin" not in operator.query_params  # the secret does not stay in the URL


def open_tab(app: AppTest, label: str) -> AppTest:
    """Predict's tabs are lazy: only the open one runs."""
    app.session_state["predict_tab"] = label
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def upload(app: AppTest, *files: tuple[str, bytes, str]) -> AppTest:
    """Add pictures through the uploader (it hands each file over once)."""
    app.file_uploader[0].set_value(list(files)).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def as_shown(markdown: str) -> str:
    """What the browser shows of Markdown escaped by ``ui.plain``: the text, no backslashes."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def captions(app: AppTest) -> list[str]:
    return [as_shown(caption) for image in app.image for caption in image.captions]


def verdicts(app: AppTest) -> list[str]:
    return [m.value for m in app.markdown if "%" in m.value and m.value.startswith("**")]


def test_predict_page_with_good_and_broken_uploads(
    with_shipped_runs: Path, shipped_run: dict
) -> None:
    app = open_page("pages/3_Predict.py")
    good = encode(boot_picture(), "PNG")
    upload(app, ("ankle-boot.png", good, "image/png"), ("broken.jpg", good[:300], "image/jpeg"))
    errors = [as_shown(e.value) for e in app.error]
    assert len(errors) == 1 and "broken.jpg" in errors[0] and "damaged or incomplete" in errors[0]
    assert any(n in " ".join(verdicts(app)) for n in ("Ankle boot", "Sneaker", "Sandal", "Bag"))
    # The file name named its class: a guess, shown as such and not counted until confirmed.
    assert any("guessed from the file name" in m.value for m in app.markdown)
    assert not any(m.label == "Accuracy on your pictures" for m in app.metric)
    app.button(key=next(b.key for b in app.button if b.label == "✔️ Confirm")).click().run()
    assert any(m.label == "Accuracy on your pictures" for m in app.metric)
    assert not any("guessed from the file name" in m.value for m in app.markdown)
    # The other tabs: the test image, and the confusion matrix of the 10,000 test images.
    open_tab(app, "🎲 A test image")
    assert any("✅" in v or "❌" in v for v in verdicts(app))
    open_tab(app, "🧮 Confusion matrix")
    shown = [m.value for m in app.metric if m.label == "Test accuracy"]
    assert shown == [f"{shipped_run['test_accuracy']:.2%}"]
    assert app.file_uploader.len == 0  # the pictures tab no longer runs


def test_uploads_and_labels_outlive_removals_model_switches_and_other_pages(
    with_shipped_runs: Path,
) -> None:
    app = open_page("pages/3_Predict.py")
    pictures = [
        (f"IMG_{n}.png", encode(boot_picture(size=(400 + 10 * n, 300)), "PNG"), "image/png")
        for n in range(3)
    ]
    upload(app, *pictures[:2])
    upload(app, pictures[2])  # the uploader only adds
    assert len(app.selectbox) == 1 + 3  # the run, and one true class per picture
    truths = [s for s in app.selectbox if s.key.startswith("predict_truth_")]
    for box, label in zip(truths, (9, 7, 5), strict=True):
        box.set_value(label).run()
    assert [m.value for m in app.metric if m.label == "Accuracy on your pictures"]
    # Remove the middle picture: the others keep their classes.
    removes = [b for b in app.button if b.label == "🗑️ Remove"]
    removes[1].click().run()
    truths = [s for s in app.selectbox if s.key.startswith("predict_truth_")]
    assert [s.value for s in truths] == [9, 5]
    # Another model and back, another page and back: all still there.
    app.radio(key="predict_source").set_value("Import a .keras file").run()
    app.radio(key="predict_source").set_value("A saved run").run()
    app.switch_page("pages/1_Explore.py").run()
    app.switch_page("pages/3_Predict.py").run()
    assert not app.exception, [e.value for e in app.exception]
    truths = [s for s in app.selectbox if s.key.startswith("predict_truth_")]
    assert [s.value for s in truths] == [9, 5]
    assert [c for c in captions(app) if c.startswith("IMG_")] == ["IMG_0.png", "IMG_2.png"]
    help_text = next(m for m in app.metric if m.label == "Accuracy on your pictures").help
    assert "of 2 right" in help_text


def test_a_camera_photo_joins_the_kept_pictures(with_shipped_runs: Path) -> None:
    app = open_page("pages/3_Predict.py")
    upload(app, ("sneaker.png", encode(boot_picture(), "PNG"), "image/png"))
    app.toggle(key="predict_camera_on").set_value(True).run()
    assert app.camera_input[0].label.startswith("Take a photo")
    photo = encode(boot_picture(size=(640, 480)), "JPEG", quality=85)
    app.camera_input[0].set_value(("image.jpg", photo, "image/jpeg")).run()
    assert not app.exception, [e.value for e in app.exception]
    shown = captions(app)
    assert "sneaker.png" in shown and "camera photo 1.jpg" in shown
    assert sum("what the network sees" in c for c in shown) == 2
    # The camera is ready for the next photo (a fresh widget, empty).
    assert app.camera_input[0].key == "predict_camera_1" and app.camera_input[0].value is None


def test_predict_page_refuses_a_bad_model_file(with_shipped_runs: Path) -> None:
    app = open_page("pages/3_Predict.py")
    app.radio(key="predict_source").set_value("Import a .keras file").run()
    app.file_uploader(key="predict_model_file").set_value(
        ("model.keras", b"this is not a model", "application/octet-stream")
    ).run()
    assert not app.exception
    assert any("not a .keras file" in as_shown(e.value) for e in app.error)


TRACKER = "![t](http://10.255.255.1/track.png)"


def test_predict_shows_file_names_and_messages_literally(with_shipped_runs: Path) -> None:
    app = open_page("pages/3_Predict.py")
    good = encode(boot_picture(), "PNG")
    upload(app, (f"{TRACKER}.png", good, "image/png"), (f"**{TRACKER}**.jpg", b"x", "image/jpeg"))
    markdown = [*captions_source(app), *(e.value for e in app.error)]
    assert all("![t](" not in text for text in markdown), markdown
    assert f"{TRACKER}.png" in captions(app)
    assert any(f"**{TRACKER}**.jpg" in as_shown(e.value) for e in app.error)
    app.radio(key="predict_source").set_value("Import a .keras file").run()
    app.file_uploader(key="predict_model_file").set_value(
        (f"{TRACKER}.keras", b"not a model", "application/octet-stream")
    ).run()
    (refused,) = [e.value for e in app.error if "keras" in e.value]
    assert "![t](" not in refused and as_shown(refused).startswith(f"{TRACKER}.keras: not a")


def captions_source(app: AppTest) -> list[str]:
    return [caption for image in app.image for caption in image.captions]


def test_predict_opens_on_the_run_it_was_sent_to(with_shipped_runs: Path) -> None:
    # "Try it on your own pictures" after a training links to Predict with ?run=...
    shipped = next(p for p in with_shipped_runs.iterdir() if p.is_dir())
    weaker = with_shipped_runs / "20261123-100000-mlp-just-trained"
    shutil.copytree(shipped, weaker)
    record = json.loads((weaker / "run.json").read_text())
    record.update(test_accuracy=0.5, network="cnn-bn", shipped=False)
    (weaker / "run.json").write_text(json.dumps(record))
    plain = open_page("pages/3_Predict.py")
    assert plain.selectbox(key="predict_run").value["run_id"] == shipped.name  # best first
    app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=TIMEOUT)
    app.switch_page("pages/3_Predict.py")
    app.query_params["run"] = weaker.name
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="predict_run").value["run_id"] == weaker.name
