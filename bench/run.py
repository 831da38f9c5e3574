"""``python -m bench [--quick]``: the whole benchmark of issue 8, one entry point.

Generates (or reuses) the cached videos, runs every approach on every video in one
session with the order alternating between runs, then the /usr/bin/time cross-check,
the queue figures and the console model benchmark; prints the table and writes
``results.json``, ``results.md`` and ``memory-4k.png`` (full run: ``bench/results/``;
quick run: ``<cache>/results-quick/``, so a quick run never touches the repo).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import approaches, queue_figures, report, videos
from bench.chart import memory_chart
from bench.measure import Measurement, kill_leftovers

REPO = approaches.REPO
CONSOLE_BENCH = REPO / "bench" / "bench_console_model.py"
TIME_BIN = "/usr/bin/time"


def log(message: str) -> None:
    print(message, flush=True)


def memory_figures(quick: bool) -> dict:
    """Issue 22: the codec x level table, the import costs and the 160 MiB box."""
    from bench import box, imports, ladder

    figures: dict = {}
    log("\n== degrade ladder: codec x level (python -m bench.ladder)")
    figures["ladder"] = ladder.table(list(ladder.LADDER_CODECS), 2 if quick else 4,
                                     ladder.DEFAULT_FRAMES, log)
    log("\n== import costs (python -m bench.imports)")
    figures["imports"] = imports.table(log)
    log("\n== 160 MiB box (python -m bench.box)")
    try:
        figures["box"] = box.measure(1 if quick else 4, log=log)
    except OSError as exc:  # no cgroup v1 memory group can be made here
        log(f"  not measured: {exc}")
    return figures


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    from core.media import ffmpeg_exe
    version = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True,
                             timeout=30).stdout.split("\n", 1)[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return {"cpu_model": cpu, "logical_cores": psutil.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "memory_gb": psutil.virtual_memory().total / 1e9,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "ffmpeg": re.sub(r"^ffmpeg version (\S+).*", r"\1", version),
            "commit": commit + (" (with uncommitted changes)" if dirty else ""),
            "load_start": [round(x, 2) for x in os.getloadavg()]}


def bench_videos(selected, runs: int, session: Path, chart_name: str) -> dict:
    """Every approach on every video; run ``r`` uses the order reversed when ``r`` is odd."""
    results = {}
    for video in selected:
        path = videos.ensure(video, log)
        info = videos.facts(video, path)
        log(f"\n== {video.name}: {video.describe()}, {info['bytes'] / 1048576:.0f} MiB")
        per: dict[str, list[dict]] = {a: [] for a in approaches.APPROACHES}
        frames: dict[str, object] = {}
        samples: dict[str, list] = {}
        for r in range(runs):
            order = approaches.APPROACHES if r % 2 == 0 else approaches.APPROACHES[::-1]
            for approach in order:
                try:
                    m, produced = approaches.run(approach, path, info["duration"],
                                                 session / f"{video.name}-{approach[:12]}-{r}")
                except (OSError, RuntimeError, ValueError, KeyError) as exc:
                    m = Measurement(wall_s=0.0, returncode=-1)
                    produced = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                record = {"run": r, "wall_s": m.wall_s, "peak_tree_kib": m.peak_tree_kib,
                          "peak_single_kib": m.peak_single_kib, **produced}
                per[approach].append(record)
                frames[approach] = produced.get("frames")
                if video.name == chart_name:
                    samples[approach] = m.samples
                status = "ok" if produced["ok"] else f"FAILED: {produced.get('error')}"
                log(f"  run {r + 1}/{runs} {approach:<15} {m.wall_s:8.2f} s "
                    f"{m.peak_tree_mb:7.0f} MB  {status}")
        summary = {a: report.summarise(rs, approaches.COUNT) for a, rs in per.items()}
        results[video.name] = {"video": info, "runs": per, "summary": summary,
                               "rows": report.rows_for_video(summary), "frames": frames,
                               "samples": samples}
    return results


def crosscheck(selected, session: Path, chart_name: str) -> list[dict]:
    """One run each of baseline and PeakOps under ``/usr/bin/time -v``, sampled as well.

    getrusage's maximum RSS is that of the largest single process in the tree, so it is
    compared with the sampler's largest single process; the tree sum is shown beside it.
    """
    if not Path(TIME_BIN).exists():
        log(f"cross-check skipped: {TIME_BIN} is missing (Debian/Ubuntu: apt-get install time)")
        return []
    video = next(v for v in selected if v.name == chart_name)
    path = videos.ensure(video, log)
    duration = videos.facts(video, path)["duration"]
    out = []
    for approach in ("baseline", "peakops"):
        report_file = session / f"time-{approach}.txt"
        m, produced = approaches.run(approach, path, duration, session / f"time-{approach}",
                                     prefix=[TIME_BIN, "-v", "-o", str(report_file)])
        text = report_file.read_text() if report_file.exists() else ""
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        if not found:
            log(f"cross-check {approach}: no figure from {TIME_BIN}")
            continue
        entry = {"approach": approach, "video": chart_name, "ok": produced["ok"],
                 "time_v_max_rss_mb": int(found.group(1)) / 1024,
                 "sampler_single_mb": m.peak_single_kib / 1024,
                 "sampler_tree_mb": m.peak_tree_kib / 1024, "wall_s": m.wall_s}
        out.append(entry)
        log(f"  cross-check {approach}: /usr/bin/time max RSS {entry['time_v_max_rss_mb']:.0f} "
            f"MB; sampler largest process {entry['sampler_single_mb']:.0f} MB, tree "
            f"{entry['sampler_tree_mb']:.0f} MB")
    return out


def console_model(quick: bool) -> str:
    if not CONSOLE_BENCH.exists():
        return "console model: not yet measured (bench/bench_console_model.py does not exist)"
    argv = [sys.executable, str(CONSOLE_BENCH), *(["--runs", "1"] if quick else [])]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    try:
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=600, start_new_session=True)
    except subprocess.TimeoutExpired:
        return "console model: not measured (timed out after 600 s)"
    if done.returncode != 0:
        return f"console model: failed (exit {done.returncode}): {done.stderr.strip()[-800:]}"
    return done.stdout.strip()


def chart(result: dict, out: Path, chart_name: str) -> str | None:
    video = result["videos"].get(chart_name)
    if not video or not video["samples"]:
        return None
    labels = {"baseline": "baseline (read_frames)", "peakops": "PeakOps process",
              "worker": "PeakOps worker"}
    series = {label: video["samples"][key] for key, label in labels.items()
              if key in video["samples"]}
    name = "memory-4k.png"
    memory_chart(series, out / name, f"Peak tree memory over time, {chart_name} "
                 f"({video['video']['width']}x{video['video']['height']}), last run",
                 limit_mb=report.RSS_TARGET_MB)
    return name


def s3_and_intake(quick: bool) -> list[str]:
    """bench.s3_range (bytes and time, ranged against download-then-extract; needs moto,
    a dev extra) and bench.intake_copy (the submit's copy), printed as they come."""
    video = "720p-30s" if quick else "1080p-2min"
    lines = []
    for module, extra in (("bench.s3_range", ["--runs", "1" if quick else "3"]),
                          ("bench.intake_copy", ["--runs", "3" if quick else "5"])):
        log(f"\n== {module}")
        done = subprocess.run([sys.executable, "-m", module, "--video", video, *extra],
                              cwd=REPO, capture_output=True, text=True, timeout=1800)
        text = done.stdout.strip() if done.returncode == 0 else \
            f"{module}: not measured: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
        log(text)
        lines.append(text)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="720p 30 s and 4K 10 s, one run, under 3 minutes")
    parser.add_argument("--runs", type=int, help="runs per approach (default 3; quick 1)")
    parser.add_argument("--videos", nargs="+", metavar="NAME", help="only these videos")
    parser.add_argument("--out", type=Path, help="results folder")
    parser.add_argument("--no-extras", action="store_true",
                        help="skip the cross-check, queue figures and console model")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    runs = args.runs or (1 if args.quick else 3)
    selected = videos.QUICK if args.quick else videos.FULL
    if args.videos:
        selected = tuple(v for v in videos.FULL + videos.QUICK if v.name in args.videos)
        selected = tuple({v.name: v for v in selected}.values())
    chart_name = videos.CHART_VIDEO[mode]
    out = args.out or (REPO / "bench" / "results" if mode == "full"
                       else videos.cache_dir() / "results-quick")

    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, stop)

    started = time.monotonic()
    session = Path(tempfile.mkdtemp(prefix="session-", dir=videos.cache_dir()))
    result: dict = {"mode": mode, "runs": runs,
                    "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "machine": machine(), "notes": []}
    try:
        result["videos"] = bench_videos(selected, runs, session, chart_name)
        queue: dict = {}
        if not args.no_extras:
            log("\n== cross-check with /usr/bin/time -v")
            result["crosscheck"] = crosscheck(selected, session, chart_name) \
                if any(v.name == chart_name for v in selected) else []
            log("\n== queue figures")
            for key, fn in (("pickup", lambda: queue_figures.idle_pickup(
                                session, 3 if args.quick else 7, log)),
                            ("noop", lambda: queue_figures.noop_round_trips(
                                session, 200 if args.quick else 1000))):
                try:
                    queue[key] = fn()
                except Exception as exc:  # a figure that could not be taken is reported
                    queue[f"{key}_error"] = f"{type(exc).__name__}: {exc}"
                    log(f"  {key}: {queue[key + '_error']}")
            log("\n== console model")
            result["console"] = console_model(args.quick)
            log(result["console"])
            result["memory"] = memory_figures(args.quick)
            result["s3_and_intake"] = s3_and_intake(args.quick)
        else:
            result["console"] = "console model: not measured (--no-extras)"
        result["queue"] = queue
    finally:
        shutil.rmtree(session, ignore_errors=True)
        leftovers = kill_leftovers()
        if leftovers:
            log(f"killed {leftovers} leftover process(es)")
    names = [v.name for v in selected]
    long_name = "1080p-10min" if "1080p-10min" in names else None
    short_name = "1080p-2min" if "1080p-2min" in names else None
    result["targets"] = report.targets(result["videos"], result["queue"], long_name, short_name,
                                       chart_name)
    result["machine"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
    result["elapsed_s"] = time.monotonic() - started
    out.mkdir(parents=True, exist_ok=True)
    result["chart"] = chart(result, out, chart_name)
    stored = json.loads(json.dumps(result, default=str))
    for video in stored["videos"].values():  # the chart holds the curves; keep JSON small
        video["samples"] = {k: len(v) for k, v in video["samples"].items()}
    (out / "results.json").write_text(json.dumps(stored, indent=2) + "\n")
    (out / "results.md").write_text(report.markdown(result))
    log("\n" + "\n".join(report.table_lines(result["videos"])))
    log("\ntargets:")
    for t in result["targets"]:
        log(f"  [{t['verdict']:>6}] {t['target']}: {t['measured']}")
    if "pickup" in result["queue"]:
        log(f"\nidle pickup median {result['queue']['pickup']['median_s'] * 1000:.0f} ms")
    if "noop" in result["queue"]:
        log(f"no-op round trips {result['queue']['noop']['per_second']:.0f}/s")
    log(f"\nwrote {out / 'results.md'}, results.json"
        + (f", {result['chart']}" if result["chart"] else "")
        + f" in {result['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
