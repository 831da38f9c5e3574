"""Summaries, target verdicts, the printed table, and the Markdown report."""

from __future__ import annotations

import statistics
from typing import Any

ROW_ORDER = ("baseline", "limit", "peakops", "worker")
ROW_LABEL = {"baseline": "baseline (read_frames)", "limit": "limit", "peakops":
             "PeakOps process", "worker": "PeakOps worker"}
RSS_TARGET_MB = 150.0


def summarise(runs: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """Median figures of the runs of one approach on one video."""
    ok = [r for r in runs if r["ok"]]
    use = ok or runs
    return {"runs": len(runs), "ok_runs": len(ok),
            "all_frames": all(r.get("frames") == count for r in runs),
            "time_s": statistics.median(r["wall_s"] for r in use),
            "time_min_s": min(r["wall_s"] for r in use),
            "time_max_s": max(r["wall_s"] for r in use),
            "rss_mb": statistics.median(r["peak_tree_kib"] for r in use) / 1024,
            "rss_max_mb": max(r["peak_tree_kib"] for r in use) / 1024,
            "single_process_max_mb": max(r["peak_single_kib"] for r in use) / 1024}


def rows_for_video(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The four headline rows; the limit is the fastest candidate that gave every frame."""
    rows = {k: dict(summary[k]) for k in ("baseline", "peakops", "worker") if k in summary}
    candidates = {k: v for k, v in summary.items() if k.startswith("limit:")
                  and v["ok_runs"] == v["runs"] and v["all_frames"]}
    if candidates:
        best = min(candidates, key=lambda k: candidates[k]["time_s"])
        rows["limit"] = {**candidates[best], "method": best.split(":", 1)[1]}
    base, limit = rows.get("baseline"), rows.get("limit")
    # The exact-frame reference: bare PyAV (issue 13), else one ffmpeg per frame.
    exact = summary.get("limit:pyav") or summary.get("limit:seek")
    for row in rows.values():
        row["x_exact_seek_time"] = row["time_s"] / exact["time_s"] if exact else None
        row["x_baseline_time"] = row["time_s"] / base["time_s"] \
            if base and base["time_s"] else None
        row["x_limit_time"] = row["time_s"] / limit["time_s"] if limit else None
        row["rss_below_baseline"] = base["rss_mb"] / row["rss_mb"] \
            if base and row["rss_mb"] else None
    return {k: rows[k] for k in ROW_ORDER if k in rows}


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def table_lines(videos: dict[str, dict[str, Any]]) -> list[str]:
    header = (f"{'video':<18} {'approach':<30} {'time s':>8} {'peak RSS MB':>11} "
              f"{'x baseline t':>12} {'x limit t':>9} {'x exact t':>9} {'RSS / baseline':>14}")
    lines = [header, "-" * len(header)]
    for name, video in videos.items():
        for key, row in video["rows"].items():
            label = ROW_LABEL[key] + (f" ({row['method']})" if key == "limit" else "")
            if row["ok_runs"] < row["runs"]:
                label += f" [{row['runs'] - row['ok_runs']} failed]"
            below = row["rss_below_baseline"]
            rss_ratio = _fmt(1 / below if below else None, "14.3f")
            lines.append(
                f"{name:<18} {label:<30} {row['time_s']:8.2f} {row['rss_mb']:11.0f} "
                f"{_fmt(row['x_baseline_time'], '12.3f')} {_fmt(row['x_limit_time'], '9.2f')} "
                f"{_fmt(row['x_exact_seek_time'], '9.2f')} {rss_ratio}")
    return lines


PROCESS_RATIO_TARGET = 1.3
"""Issue 22 item 6: ``peakops process`` against bare PyAV on the 2-min 1080p video."""


def targets(videos: dict[str, dict[str, Any]], queue: dict[str, Any] | None,
            long_name: str | None, short_name: str | None,
            chart_name: str) -> list[dict[str, Any]]:
    """Each target of issue 8 with the measured figure and met/missed."""
    out: list[dict[str, Any]] = []

    def add(target: str, figure: str, met: bool | None) -> None:
        out.append({"target": target, "measured": figure,
                    "verdict": "n/a" if met is None else ("met" if met else "MISSED")})

    for key in ("peakops", "worker"):
        worst = max(((v["rows"][key]["rss_max_mb"], n) for n, v in videos.items()
                     if key in v["rows"]), default=None)
        if worst:
            add(f"{ROW_LABEL[key]}: peak tree RSS <= {RSS_TARGET_MB:g} MB on every video",
                f"worst {worst[0]:.0f} MB ({worst[1]}, max of runs)", worst[0] <= RSS_TARGET_MB)
    chart = videos.get(chart_name, {}).get("rows", {})
    for key in ("peakops", "worker"):
        if key in chart and "baseline" in chart:
            below = chart[key]["rss_below_baseline"]
            add(f"{ROW_LABEL[key]}: >= 5x below baseline RSS on {chart_name}",
                f"{below:.1f}x ({chart['baseline']['rss_mb']:.0f} vs "
                f"{chart[key]['rss_mb']:.0f} MB)",
                below >= 5)
    for key in ("peakops", "worker"):
        ratios = [(v["rows"][key]["x_limit_time"], n) for n, v in videos.items()
                  if key in v["rows"] and v["rows"][key]["x_limit_time"] is not None]
        if ratios:
            worst = max(ratios)
            detail = ", ".join(f"{n} {r:.2f}x" for r, n in ratios)
            add(f"{ROW_LABEL[key]}: time <= 1.5x limit on every video", detail, worst[0] <= 1.5)
        exact = [(v["rows"][key]["x_exact_seek_time"], n) for n, v in videos.items()
                 if key in v["rows"] and v["rows"][key]["x_exact_seek_time"] is not None]
        if exact and key == "peakops":
            worst = max(exact)
            detail = ", ".join(f"{n} {r:.2f}x" for r, n in exact)
            add(f"{ROW_LABEL[key]}: time <= 1.5x the bare-PyAV exact-frame reference",
                detail, worst[0] <= 1.5)
            if short_name and short_name in videos:  # issue 22 item 6, on the 2-min 1080p
                ratio = videos[short_name]["rows"][key].get("x_exact_seek_time")
                if ratio is not None:
                    add(f"{ROW_LABEL[key]}: time <= {PROCESS_RATIO_TARGET:g}x the bare-PyAV "
                        f"exact-frame reference on {short_name} (issue 22)", f"{ratio:.2f}x",
                        ratio <= PROCESS_RATIO_TARGET)
    if long_name and long_name in videos:
        rows = videos[long_name]["rows"]
        for key in ("peakops", "worker"):
            if key in rows and "baseline" in rows:
                faster = 1 / rows[key]["x_baseline_time"]
                add(f"{ROW_LABEL[key]}: >= 20x faster than baseline on {long_name}",
                    f"{faster:.1f}x ({rows['baseline']['time_s']:.1f} s vs "
                    f"{rows[key]['time_s']:.2f} s)", faster >= 20)
        if short_name and short_name in videos:
            for key in ("peakops", "worker"):
                long_t = rows.get(key, {}).get("time_s")
                short_t = videos[short_name]["rows"].get(key, {}).get("time_s")
                if long_t and short_t:
                    add(f"{ROW_LABEL[key]}: {long_name} within 1.5x the time of {short_name}",
                        f"{long_t / short_t:.2f}x ({long_t:.2f} s vs {short_t:.2f} s)",
                        long_t / short_t <= 1.5)
    if queue and "pickup" in queue:
        median = queue["pickup"]["median_s"]
        add("idle pickup (queued -> claimed) <= 0.5 s",
            f"median {median * 1000:.0f} ms of {queue['pickup']['runs']} "
            f"(max {queue['pickup']['max_s'] * 1000:.0f} ms)", median <= 0.5)
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [f"# PeakOps benchmark ({result['mode']})", "",
             f"- date: {result['date']}; commit {m.get('commit', '?')}",
             f"- machine: {m['cpu_model']}, {m['logical_cores']} logical cores "
             f"({m['physical_cores']} physical), {m['memory_gb']:.1f} GB RAM, {m['os']}; "
             f"Python {m['python']}; ffmpeg {m['ffmpeg']}",
             f"- load average at start {m['load_start']}, at end {m.get('load_end')} "
             "(other work ran on this machine: figures are medians of "
             f"{result['runs']} run(s), approaches in alternating order)",
             "- time: wall clock of the whole command; peak RSS: the largest sum of the "
             "resident memory of the command and all its descendants, sampled every 50 ms; "
             "MB = 1024 KiB", "",
             "## Videos", ""]
    for name, video in result["videos"].items():
        info = video["video"]
        lines.append(f"- **{name}**: {info['width']}x{info['height']}, {info['duration']:g} s, "
                     f"{info['fps']:g} fps, keyframe every {info['keyint_s']:g} s, "
                     f"{info['bytes'] / 1048576:.0f} MiB")
    lines += ["", "## Results", "",
              "| video | approach | time s | peak tree RSS MB | time / baseline | "
              "time / limit | time / exact reference | RSS / baseline |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, video in result["videos"].items():
        for key, row in video["rows"].items():
            label = ROW_LABEL[key] + (f" ({row['method']})" if key == "limit" else "")
            if row["ok_runs"] < row["runs"]:
                label += f" ({row['runs'] - row['ok_runs']} run(s) failed)"
            rss_ratio = 1 / row["rss_below_baseline"] if row["rss_below_baseline"] else None
            lines.append(f"| {name} | {label} | {row['time_s']:.2f} | {row['rss_mb']:.0f} | "
                         f"{_fmt(row['x_baseline_time'], '.3f')} | "
                         f"{_fmt(row['x_limit_time'], '.2f')} | "
                         f"{_fmt(row['x_exact_seek_time'], '.2f')} | "
                         f"{_fmt(rss_ratio, '.3f')} |")
    lines += ["", "Limit candidates (the fastest that wrote all 20 frames is the limit; "
              "`pyav` (bare PyAV, one decode thread) and `seek` give the exact frames PeakOps "
              "gives; `pyav` is the 'time / exact reference' column):", "",
              "| video | method | time s | peak tree RSS MB | frames |", "|---|---|---:|---:|---:|"]
    for name, video in result["videos"].items():
        for key, row in video["summary"].items():
            if key.startswith("limit:"):
                frames = video["frames"].get(key, "?")
                lines.append(f"| {name} | {key[6:]} | {row['time_s']:.2f} | "
                             f"{row['rss_mb']:.0f} | {frames} |")
    lines += ["", "## Targets (issue 8)", "", "| target | measured | verdict |", "|---|---|---|"]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {t['verdict']} |")
    queue = result.get("queue") or {}
    lines += ["", "## Queue", ""]
    if "pickup" in queue:
        p = queue["pickup"]
        lines.append(f"- idle pickup: median {p['median_s'] * 1000:.0f} ms, max "
                     f"{p['max_s'] * 1000:.0f} ms over {p['runs']} submits ({p['measured']})")
    if "noop" in queue:
        n = queue["noop"]
        lines.append(f"- no-op job round trips: {n['per_second']:.0f} per second, median "
                     f"{n['median_ms']:.1f} ms each over {n['jobs']} jobs ({n['measured']})")
    for key, message in queue.items():
        if key.endswith("_error"):
            lines.append(f"- {key}: {message}")
    lines += ["", "## Console model", "", "```", result.get("console", "").rstrip(), "```"]
    if result.get("crosscheck"):
        lines += ["", "## Cross-check with /usr/bin/time -v", ""]
        for c in result["crosscheck"]:
            lines.append(f"- {c['approach']} on {c['video']}: /usr/bin/time maximum resident "
                         f"set size {c['time_v_max_rss_mb']:.0f} MB (largest single process); "
                         f"sampler: largest single process {c['sampler_single_mb']:.0f} MB, "
                         f"whole tree {c['sampler_tree_mb']:.0f} MB")
    if result.get("chart"):
        lines += ["", f"![memory over time]({result['chart']})"]
    if result.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"
