"""Benchmarks through the product: `streamlit run`, Chromium, the pages a user clicks.

    python -m bench            everything: 5 rotated rounds of the training comparison,
                               3 Stops, memory now and before, two 15-epoch trainings
                               of cnn-bn (about 70 minutes on 2 cores)
    python -m bench --quick    one round of each, short trainings, no "before" memory
                               (about 15 minutes)
    python -m bench --only stop --only memory     some of the benchmarks only

Needs Chromium (/usr/bin/chromium, or CHROMIUM_PATH) and Playwright from
requirements-test.txt, as the browser tests do.

Every ratio compares two things measured side by side in this run:

1. watched training: a job started from the Train page, watched by 1 and by 3
   browser sessions, against the same job from ``python -m fmnist train`` and
   against the seeds' plain ``model.fit`` (bench/training.py);
   (plus the same job with no browser, and who used the CPU meanwhile);
2. upload to prediction on the Predict page, idle and while a cnn trains, and a
   warm 12-megapixel JPEG (bench/interactive.py);
3. Stop to the saved run (bench/interactive.py);
4. the web server's memory after a walk through every page, now and at the
   commit before training left the server (bench/memory.py);
5. library figures: dataset load, one picture through the inference service
   (bench/library.py);
6. page speed: every page's first load, each Explore interaction (bench/pages.py);
7. a class on one server: four sessions at once (two training, two uploading), the
   server's memory after 21 visitors (bench/safety.py);
8. views inside the network: how faithful the "Why this answer?" maps are (salient
   against random pixels blanked), and the time of one map (bench/views.py);
9. time to accuracy: the ``fast`` network's recipe from the Train page, Start to the
   saved run, and its test accuracy (bench/accuracy.py). ``--accuracy`` trains every
   network's recipe instead (most of an hour on 2 cores).
10. what augmentation (mirror, shift, grey box) does to cnn-bn's test accuracy at its
   recipe's 15 epochs, two jobs side by side on the server's worker (about 25 minutes on
   2 cores; bench/augmentation.py).
11. the training engine against the seeds' plain ``model.fit`` at their batch size, and
   batches fetched on the device against tf.data's, library-level (bench/feed.py).

Results are printed as a table and written to bench/output/results.json; the
servers' logs go beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.product import OUTPUT, Server, chromium
from fmnist.networks import NETWORKS

FULL_ROUNDS = 5  # each training contender runs once in each position
FULL_STOP_ROUNDS = 3
FEED_ROUNDS = 3
UPLOADS = 5
BENCHMARKS = (
    "library", "training", "responsiveness", "stop", "memory", "pages", "safety", "views",
    "accuracy", "augmentation", "feed",
)  # fmt: skip
BIG_UPLOADS = 3


def section(results: dict, name: str, step: Callable[[], dict]) -> None:
    """Run one benchmark; a failure is recorded and the others still run."""
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    try:
        results[name] = step()
    except Exception as error:  # noqa: BLE001 - report and go on with the next benchmark
        traceback.print_exc()
        results[name] = {"error": f"{type(error).__name__}: {error}"[:2000]}
    seconds = time.perf_counter() - started
    results.setdefault("seconds", {})[name] = round(seconds)
    print(f"   ({seconds:.0f} s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="one round of each, no 'before' memory"
    )
    parser.add_argument("--rounds", type=int, help="rounds of the training comparison")
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        help="run only these benchmarks (repeatable)",
    )
    parser.add_argument(
        "--accuracy",
        action="store_true",
        help="train every network's recipe from the Train page (time to accuracy; long)",
    )
    args = parser.parse_args()
    if args.accuracy:
        args.only = [*(args.only or []), "accuracy"]
    rounds = args.rounds or (1 if args.quick else FULL_ROUNDS)
    stop_rounds = 1 if args.quick else FULL_STOP_ROUNDS
    wanted = set(args.only or BENCHMARKS)

    from bench import (
        accuracy,
        augmentation,
        feed,
        interactive,
        library,
        memory,
        pages,
        safety,
        training,
        views,
    )

    results: dict = {
        "mode": "quick" if args.quick else "full",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
    }
    started = time.perf_counter()
    if "library" in wanted:
        section(results, "dataset_load", library.dataset_load)
        section(results, "inference_roundtrip", library.inference_roundtrip)
    if "views" in wanted:
        section(results, "views", views.run)
    if "feed" in wanted:
        section(results, "feed", lambda: feed.run(1 if args.quick else FEED_ROUNDS))
    with chromium() as browser:
        if "views" in wanted:
            with Server("views") as server:
                section(results, "view_times", lambda: views.page_times(server, browser))
        if "pages" in wanted:
            with Server("pages") as server:
                section(
                    results, "pages", lambda: pages.run(server, browser, 1 if args.quick else 3)
                )
        if wanted & {"training", "responsiveness", "stop"}:
            with Server("bench") as server:
                if "training" in wanted:
                    section(
                        results, "watched_training", lambda: training.run(server, browser, rounds)
                    )
                if "responsiveness" in wanted:
                    section(
                        results,
                        "responsiveness",
                        lambda: interactive.responsiveness(
                            server, browser, UPLOADS, BIG_UPLOADS, idle_after=not args.quick
                        ),
                    )
                if "stop" in wanted:
                    section(results, "stop", lambda: interactive.stop(server, browser, stop_rounds))
                results["bench_server_log_tracebacks"] = server.tracebacks()
        if "accuracy" in wanted:
            recipes = tuple(NETWORKS) if args.accuracy else (accuracy.SPEED_RECIPE,)
            with Server("accuracy") as server:
                section(results, "accuracy", lambda: accuracy.run(server, browser, recipes))
        if "augmentation" in wanted:
            with Server("augmentation") as server:
                section(
                    results, "augmentation", lambda: augmentation.run(server, browser, args.quick)
                )
        if "safety" in wanted:
            section(results, "safety", lambda: safety.run(browser))
        if "memory" in wanted:
            section(results, "memory_now", lambda: memory.now(browser))
            if not args.quick:
                section(results, "memory_before", lambda: memory.before(browser))
    results["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    results["total_seconds"] = round(time.perf_counter() - started)
    results["bench_process_imported_tensorflow"] = "tensorflow" in sys.modules
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "results.json").write_text(json.dumps(results, indent=1))
    print()
    print(table(results))
    print(f"\nwritten to {OUTPUT / 'results.json'}; {results['total_seconds'] / 60:.1f} min in all")
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    if failed:
        print(f"FAILED: {', '.join(failed)} (see above and results.json)")
    return 1 if failed else 0


# -- the table ---------------------------------------------------------------------


def verdict(value: float | None, target: float | None, at_least: bool) -> str:
    if value is None or target is None:
        return ""
    good = value >= target if at_least else value <= target
    return "ok" if good else "MISSED"


def rows(results: dict) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []

    def failed(name: str) -> bool:
        value = results.get(name)
        if isinstance(value, dict) and "error" in value:
            out.append((name, "failed: " + value["error"].splitlines()[0][:70], "", "", "", ""))
            return True
        return value is None

    if not failed("watched_training"):
        for network, s in results["watched_training"].items():
            target = s["target_watched_over_command_line"]
            head = f"{network}, {s['images']:,} img x {s['epochs']} ep"
            for key, label in (("images_per_s", "run avg"), ("last_epoch_images_per_s", "last ep")):
                cli = s["best"]["command line"][key]
                for watchers in ("1", "3"):
                    mine = s["best"][f"watched by {watchers}"][key]
                    ratio = s[f"watched{watchers}_over_command_line_{key}"]
                    median = s[f"median_watched{watchers}_over_command_line_{key}"]
                    out.append(
                        (
                            f"{head}: watched by {watchers} / CLI, {label}",
                            f"{mine:,} img/s",
                            f"{cli:,} img/s",
                            f"{ratio:.2f} (med {median:.2f})",
                            f">= {target:.2f}",
                            verdict(ratio, target, True),
                        )
                    )
                out.append(
                    (
                        f"{head}: unwatched / CLI, {label}",
                        f"{s['best']['unwatched'][key]:,} img/s",
                        f"{cli:,} img/s",
                        f"{s[f'unwatched_over_command_line_{key}']:.2f}",
                        "",
                        "",
                    )
                )
                keras = s["best"]["plain Keras"][key]
                out.append(
                    (
                        f"{head}: CLI / plain Keras fit, {label}",
                        f"{cli:,} img/s",
                        f"{keras:,} img/s",
                        f"{s[f'command_line_over_plain_keras_{key}']:.2f}",
                        "",
                        "",
                    )
                )
    if not failed("responsiveness"):
        r = results["responsiveness"]
        out.append(
            ("upload -> prediction, a session's first photo, idle",
             f"{r['first_photo_ms_idle_median']} ms", "", "", "", "")
        )  # fmt: skip
        out.append(
            (
                "upload -> prediction, photo: cnn training / idle",
                f"{r['photo_ms_training_median']} ms",
                f"{r['photo_ms_idle_median']} ms",
                f"{r['ratio_training_over_idle']:.2f}",
                f"<= {r['target_ratio']}",
                verdict(r["ratio_training_over_idle"], r["target_ratio"], False),
            )
        )
        out.append(
            (
                "upload -> prediction, 12 MP JPEG, warm, idle",
                f"{r['big_ms_idle_median']} ms",
                "",
                "",
                f"<= {r['target_big_ms']} ms",
                verdict(r["big_ms_idle_median"], r["target_big_ms"], False),
            )
        )
        out.append(
            (
                "upload -> prediction, 12 MP JPEG, cnn training",
                f"{r['big_ms_training_median']} ms",
                f"{r['big_ms_idle_median']} ms",
                f"{r['big_ms_training_median'] / r['big_ms_idle_median']:.2f}",
                "",
                "",
            )
        )
    if not failed("stop"):
        s = results["stop"]
        out.append(
            (
                "Stop -> run.json on disk (mlp, 60,000 img)",
                f"{s['to_run_json_s_median']:.2f} s",
                "",
                "",
                f"<= {s['target_s']:.0f} s",
                verdict(s["to_run_json_s_median"], s["target_s"], False),
            )
        )
        out.append(
            (
                "Stop -> 'Saved as run' on the page",
                f"{s['to_saved_on_page_s_median']:.2f} s",
                "",
                "",
                f"<= {s['target_s']:.0f} s",
                verdict(s["to_saved_on_page_s_median"], s["target_s"], False),
            )
        )
    if not failed("memory_now"):
        now = results["memory_now"]
        before = results.get("memory_before")
        has_before = isinstance(before, dict) and "error" not in before
        if not has_before:
            failed("memory_before")
        out.append(
            (
                "server VmRSS after a full walk: now / before",
                f"{now['server_rss_mb']:,} MB",
                f"{before['server_rss_mb']:,} MB" if has_before else "(full run only)",
                f"{now['server_rss_mb'] / before['server_rss_mb']:.2f}" if has_before else "",
                "",
                "",
            )
        )
        out.append(
            (
                "TensorFlow in the server process: now / before",
                "yes" if now["server_has_tensorflow"] else "no",
                ("yes" if before["server_has_tensorflow"] else "no") if has_before else "",
                "",
                "",
                "",
            )
        )
        helpers = ", ".join(f"{k} {v:,}" for k, v in now["helper_processes_rss_mb"].items())
        out.append(("now: VmRSS of the server's helper processes (MB)", helpers, "", "", "", ""))
        for key, label in (
            ("all_processes_rss_mb", "server + helpers, sum of VmRSS: now / before"),
            ("all_processes_private_mb", "server + helpers, private (USS): now / before"),
        ):
            total_before = before[key] if has_before else None
            out.append(
                (
                    label,
                    f"{now[key]:,} MB",
                    f"{total_before:,} MB" if total_before else "(full run only)",
                    f"{now[key] / total_before:.2f}" if total_before else "",
                    "",
                    "",
                )
            )
    if not failed("views"):
        from bench import views

        v = results["views"]
        for name in views.MAPS:
            f = v[name]
            out.append(
                (
                    f"map faithfulness, {name}: salient / random blanked",
                    f"{f['salient_drop']:.3f}",
                    f"{f['random_drop']:.3f}",
                    f"{f['ratio']:.2f}",
                    f">= {v['target_faithfulness']:.1f}",
                    verdict(f["ratio"], v["target_faithfulness"], True),
                )
            )
        m = v["epoch_matrices"]
        out.append(
            (
                f"per-epoch confusion matrix, cnn: scoring / epoch ({m['validation_images']:,} "
                "val. img)",
                f"{m['scoring_percent_of_epoch']:.1f}%",
                f"{m['keras_validation_percent_of_epoch']:.1f}% (Keras's val.)",
                f"{m['matrix_cost_percent_of_epoch']:+.1f} pts",
                f"<= +{m['target_percent']:.0f} pts",
                verdict(m["matrix_cost_percent_of_epoch"], m["target_percent"], False),
            )
        )
        out.append(
            (
                "per-epoch weight health (256 images' gradients): time / cnn epoch",
                f"{m['health_percent_of_epoch']:.1f}%",
                "",
                "",
                "",
                "",
            )
        )
        for method, label in (("auto", "Grad-CAM"), ("integrated gradients", "int. gradients")):
            out.append(
                (f"one map through the service, cnn-bn, {label}",
                 f"{v['service_ms_' + method]} ms", "", "", "", "")
            )  # fmt: skip
    if not failed("view_times"):
        t = results["view_times"]
        for name, value in t["done_ms_median"].items():
            out.append(
                (
                    f"view on Predict, warm: {name}, until drawn",
                    f"{value:,} ms",
                    "",
                    "",
                    f"<= {t['target_ms']:,} ms",
                    verdict(value, t["target_ms"], False),
                )
            )
    if not failed("pages"):
        p = results["pages"]
        code = p["streamlit_code"]
        out.append(
            (
                f"page: Streamlit's code ({code['files']} files), one connection: "
                "fmnist.ui.server / streamlit run",
                f"{code['ms']['this server']:,} ms",
                f"{code['ms']['streamlit run']:,} ms",
                f"{code['ratio']:.1f}x faster",
                "",
                "",
            )
        )
        for name, value in p["done_ms_median"].items():
            target = p["target_first_load_ms" if "first load" in name else "target_interaction_ms"]
            out.append(
                (
                    f"page: {name}, until drawn",
                    f"{value:,} ms",
                    "",
                    "",
                    f"<= {target:,} ms",
                    verdict(value, target, False),
                )
            )
    if not failed("safety"):
        c, m = results["safety"]["concurrent"], results["safety"]["memory"]
        out.append(
            (
                "4 sessions at once (2 training, 2 uploading): runs saved",
                f"{c['runs_saved']} of {c['jobs']}",
                f"{c['page_exceptions']} exceptions",
                "",
                "all, 0 exceptions",
                verdict(
                    float(c["runs_saved"] == c["jobs"] and c["page_exceptions"] == 0), 1.0, True
                ),
            )
        )
        out.append(
            ("4 sessions at once: slowest upload -> prediction", f"{c['slowest_upload_ms']} ms",
             "", "", "", "")
        )  # fmt: skip
        after, before = m["server_rss_mb_after_all"], m["server_rss_mb_after_1"]
        out.append(
            (f"server VmRSS after {m['visitors']} visitors / after 1", f"{after:,} MB",
             f"{before:,} MB", f"{after / before:.2f}", "", "")
        )  # fmt: skip
    if not failed("accuracy"):
        a = results["accuracy"]
        start_up = f"{a['tensorflow_start_up_seconds']} s"
        out.append(("TensorFlow start-up: cold server to a ready worker", start_up, "", "", "", ""))
        for network, r in a.items():
            if not isinstance(r, dict):
                continue
            target = 180 if network == accuracy_speed_recipe() else None
            out.append(
                (
                    f"{network} recipe ({r['epochs']} ep, batch {r['batch']}, {r['schedule']}"
                    + (", mixed precision" if r.get("mixed_precision") else "")
                    + "): Start -> saved run, test accuracy",
                    f"{r['wall_seconds']:.0f} s",
                    f"{r['test_accuracy']:.2%}",
                    "",
                    ">= 93.0% in <= 180 s" if target else "",
                    verdict(
                        float(r["test_accuracy"] >= 0.93 and r["wall_seconds"] <= 180), 1.0, True
                    )
                    if target
                    else "",
                )
            )
            if "unwatched" in r:
                u = r["unwatched"]
                out.append(
                    (
                        f"{network} recipe, no page open (the server's worker alone)",
                        f"{u['wall_seconds']:.0f} s",
                        f"{u['test_accuracy']:.2%}",
                        "",
                        ">= 93.0% in <= 180 s",
                        verdict(
                            float(u["test_accuracy"] >= 0.93 and u["wall_seconds"] <= 180),
                            1.0,
                            True,
                        ),
                    )
                )
    if not failed("augmentation"):
        g = results["augmentation"]
        plain, augmented = g["plain"], g["augmented"]
        mirrored = augmented.get("test_accuracy_mirrored")
        out.append(
            (
                f"{g['network']} {g['recipe'].get('epochs')} epochs, test accuracy: augmented "
                f"({', '.join(g['augment'])}) / plain",
                f"{augmented['test_accuracy']:.2%}"
                + (f" ({mirrored:.2%} with the mirror)" if mirrored else ""),
                f"{plain['test_accuracy']:.2%}",
                f"{g['test_accuracy_gain_points']:+.2f} points",
                "",
                "",
            )
        )
    if not failed("feed"):
        # The engine over the seeds' fit.
        targets = {"mlp": 2.0, "mlp, all images": 2.0, "cnn": 1.2, "cnn, mixed precision": 1.2}
        for case, f in results["feed"].items():
            best = f["best"]
            out.append(
                (
                    f"{case}: device feed / tf.data batches (run average)",
                    f"{best['device feed']['images_per_s']:,} img/s",
                    f"{best['tf.data']['images_per_s']:,} img/s",
                    f"{f['device_over_tf_data']:.2f}",
                    "",
                    "",
                )
            )
            if "engine_over_plain_keras" in f:
                target = targets.get(case)
                out.append(
                    (
                        f"{case}: the engine / the seeds' model.fit, batch 32",
                        f"{best['device feed']['images_per_s']:,} img/s",
                        f"{best['plain Keras']['images_per_s']:,} img/s",
                        f"{f['engine_over_plain_keras']:.2f}",
                        f">= {target}" if target else "",
                        verdict(f["engine_over_plain_keras"], target, True),
                    )
                )
    if not failed("dataset_load"):
        d = results["dataset_load"]
        out.append(
            (
                "dataset load, fresh process (median)",
                f"{d['load_seconds_median']:.2f} s",
                f"{d['arrays_mb']:.0f} MB of uint8",
                "",
                "",
                "",
            )
        )
    if not failed("inference_roundtrip"):
        i = results["inference_roundtrip"]
        if "skipped" in i:
            out.append(("one picture through the inference service", i["skipped"], "", "", "", ""))
        else:
            out.append(
                (
                    f"one picture ({i['model']}): service / in process",
                    f"{i['one_picture_through_service_us_median']:,} us",
                    f"{i['one_picture_in_process_us_median']:,} us",
                    f"{i.get('ratio_service_over_in_process', 0):.2f}",
                    "",
                    "",
                )
            )
    return out


def accuracy_speed_recipe() -> str:
    from bench.accuracy import SPEED_RECIPE

    return SPEED_RECIPE


def cpu_rows(results: dict) -> list[tuple[str, ...]]:
    """CPU-seconds from Start to the saved run, medians, for the server-side contenders."""
    out = []
    for network, s in (results.get("watched_training") or {}).items():
        if network == "error":
            continue
        for name, cpu in s.get("cpu_seconds_median", {}).items():
            out.append((f"{network}: {name}", *(f"{cpu[group]:g}" for group in CPU_GROUPS)))
    return out


CPU_GROUPS = ("server", "worker", "helpers", "browsers", "rest")


def layout(header: tuple[str, ...], body: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *body]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return lines


def table(results: dict) -> str:
    lines = layout(("figure", "measured", "against", "ratio", "target", ""), rows(results))
    cpu = cpu_rows(results)
    if cpu:
        lines.append(
            "\nWhere the CPU went from Start to the saved run (CPU-seconds, medians; 'rest' is "
            "everything else on the machine):"
        )
        lines += layout(("job", *CPU_GROUPS), cpu)
    load = results.get("load_average_at_start"), results.get("load_average_at_end")
    lines.append(
        f"\n{results['mode']} run, {results['cpus']} CPUs; load average at start {load[0]}, "
        f"at end {load[1]} (figures are noisy when the machine is busy)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
