"""Operating rec-nightly on real data: the bars of issue 21, measured side by side in one run.

    python bench/nightly_ops.py [--ml100k DIR] [--small DIR] [--top-k 10] [--chromium]

Each step runs the ``rec-nightly`` command in a process of its own, as cron would:

1. **Three nights and a rollback** on ml-100k: publish, publish, ``rollback``; then
   ``status`` and the links, and a fourth night, whose gate must compare its candidate
   with the first version.
2. **A truncated export**: ml-100k's ``u.data`` cut to its first 60% of rows; the data
   gate must refuse it (exit 3) before training, and nothing in the home may change.
3. **A failed run** (a ratings file with a bad line: exit 2), for the metrics file.
4. ``promtool check metrics`` on the metrics file after a published, the refused and the
   failed run (where Debian's ``prometheus`` package is installed).
5. **List quality** of the default model's table on ml-100k and ml-latest-small, beside
   the popularity baseline's (the first night's run report).
6. With ``--chromium``: ``report.html`` opened in headless Chromium (Debian's
   ``chromium``): its console messages, every URL it requested (Chromium's net log), and
   a screenshot (``--screenshot PATH``, e.g. docs/report.png).

Prints a table and writes bench/results/nightly_ops.json. The data is copied into a
temporary folder; nothing is written next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SHARED = REPO.parent / "shared" / "data"


def nightly(*args: str, quiet: bool = True) -> dict:
    """``rec-nightly ARGS`` in its own process: exit code, wall seconds, stderr lines."""
    cmd = [sys.executable, "-m", "movierec.nightly", *args] + (["--quiet"] if quiet else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    return {
        "command": "rec-nightly " + " ".join(args) + (" --quiet" if quiet else ""),
        "code": proc.returncode,
        "seconds": round(wall, 2),
        "stderr": proc.stderr.splitlines(),
        "stdout": proc.stdout,
    }


def last_report(home: Path) -> dict:
    reports = sorted((home / "runs").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(reports[-1].read_text())


def links(home: Path) -> dict:
    return {
        "current": os.readlink(home / "models" / "current"),
        "latest": os.readlink(home / "recommendations" / "latest.parquet"),
    }


def tree(home: Path) -> list[str]:
    """Every file under the home but the run reports, report.html and the lock."""
    skip = {"runs", "report.html", ".lock"}
    return sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.relative_to(home).parts[0] not in skip and not p.is_dir()
    )


def promtool(path: Path) -> dict | None:
    if shutil.which("promtool") is None:
        return None
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=path.read_text(), capture_output=True, text=True
    )
    return {"code": proc.returncode, "output": (proc.stdout + proc.stderr).strip()}


FIGURES = ("coverage", "movies_in_lists", "top_1pct_share", "gini")


def quality_row(name: str, report: dict) -> dict:
    q = report["list_quality"]
    return {
        "data": name,
        "users": q["users"],
        "movies": q["catalog_movies"],
        "k": q["k"],
        **{f"model_{k}": q["model"][k] for k in FIGURES},
        **{f"popularity_{k}": q["popularity"][k] for k in FIGURES},
        "top_movie": q["top_movies"][0],
    }


def chromium(page: Path, work: Path, screenshot: Path | None) -> dict:
    """Open ``page`` in headless Chromium: its console lines, and the URLs it requested
    beyond those Chromium requests on ``about:blank`` (its own updater and account
    checks, whatever the page). Chromium's net log records every request of the network
    stack (a file:// page is read without it), so an image, script, font or fetch over
    http(s) would be listed; a console.error would be a CONSOLE line."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        return {"skipped": "no chromium on PATH"}
    shot = screenshot or work / "report.png"

    def open_in_chromium(url: str, png: Path, name: str) -> tuple[list[str], set[str], str]:
        netlog = work / f"netlog-{name}.json"
        cmd = [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            f"--log-net-log={netlog}",
            f"--window-size={SCREEN[0]},{SCREEN[1]}",
            f"--screenshot={png}",
            url,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
        text = netlog.read_text().rstrip() if netlog.exists() else '{"events": []}'
        if not text.endswith("}"):  # a log cut short: close its event list
            text = text.rstrip(",") + "]}"
        urls = {
            url.split("?")[0]
            for event in json.loads(text).get("events", [])
            if (url := (event.get("params") or {}).get("url"))
        }
        return console, urls, " ".join(cmd)

    console, urls, command = open_in_chromium(page.resolve().as_uri(), shot, "page")
    _, blank_urls, _ = open_in_chromium("about:blank", work / "blank.png", "blank")
    shrink_png(shot)
    return {
        "command": command,
        "console_lines": console,
        "requested_by_the_page": sorted(urls - blank_urls),
        "requested_by_chromium_itself": sorted(blank_urls),
        "screenshot": str(shot),
        "screenshot_bytes": shot.stat().st_size if shot.exists() else None,
    }


#: The browser window of the screenshot (CSS pixels).
SCREEN = (1100, 2300)


def shrink_png(path: Path) -> None:
    """Fewer colours, same pixels: the README's screenshot stays small."""
    if not path.exists():
        return
    from PIL import Image

    Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ml100k", type=Path, default=SHARED / "ml-100k")
    ap.add_argument("--small", type=Path, default=SHARED / "ml-latest-small")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--chromium", action="store_true", help="check report.html in Chromium")
    ap.add_argument("--screenshot", type=Path, default=None, help="where to keep the PNG")
    args = ap.parse_args()
    k = ["--top-k", str(args.top_k), "--titles"]
    out: dict = {"top_k": args.top_k}
    with tempfile.TemporaryDirectory(prefix="nightly-ops-") as tmp:
        tmp = Path(tmp)
        data = Path(shutil.copytree(args.ml100k, tmp / "ml-100k"))
        home, prom = tmp / "home", tmp / "textfile" / "movierec.prom"
        prom.parent.mkdir()
        watch = ["--metrics-file", str(prom)]
        run = ["--data", str(data), "--home", str(home), *k, *watch]

        # 1. three nights and a rollback
        first = nightly(*run)
        v1 = last_report(home)
        out["night1"] = {**first, "version": v1["version"], "gate": v1["gate"]["decision"]}
        out["promtool_published"] = promtool(prom)
        second = nightly(*run)
        v2 = last_report(home)
        out["night2"] = {**second, "version": v2["version"], "gate": v2["gate"]["decision"]}
        back = nightly("rollback", "--home", str(home), *watch)
        out["rollback"] = {**back, "links": links(home)}
        status = nightly("status", "--home", str(home), quiet=False)
        status_json = json.loads(
            nightly("status", "--home", str(home), "--json", quiet=False)["stdout"]
        )
        service = status_json["in_service"]["version"]
        out["status"] = {"text": status["stdout"], "in_service": service}
        fourth = nightly(*run)
        v4 = last_report(home)
        out["night4"] = {
            **fourth,
            "version": v4["version"],
            "gate": v4["gate"]["decision"],
            "compared_with": v4["metrics"]["service"]["version"],
            "in_service_before": v4["in_service_before"]["model"],
        }

        # 2. a truncated export
        cut = Path(shutil.copytree(data, tmp / "cut"))
        lines = (cut / "u.data").read_text().splitlines(keepends=True)
        (cut / "u.data").write_text("".join(lines[: int(0.6 * len(lines))]))
        before_tree, before_links = tree(home), links(home)
        table = (home / "recommendations" / "latest.parquet").read_bytes()
        refused = nightly("--data", str(cut), "--home", str(home), *k, *watch)
        after = last_report(home)
        out["truncated"] = {
            **refused,
            "rows": len(lines[: int(0.6 * len(lines))]),
            "of": len(lines),
            "stages": list(after["stages"]),
            "unchanged": tree(home) == before_tree
            and links(home) == before_links
            and (home / "recommendations" / "latest.parquet").read_bytes() == table,
        }
        out["promtool_refused"] = promtool(prom)

        # 3. a failed run
        broken = Path(shutil.copytree(data, tmp / "broken"))
        with open(broken / "u.data", "a") as f:
            f.write("1\t2\tfive\t3\n")
        out["failed"] = nightly("--data", str(broken), "--home", str(home), *k, *watch)
        out["promtool_failed"] = promtool(prom)
        out["metrics_file_after_failed"] = prom.read_text()

        # 5. list quality
        out["quality"] = [quality_row("ml-100k", v1)]
        if args.small.is_dir():
            small_home = tmp / "small-home"
            small = nightly("--data", str(args.small), "--home", str(small_home), *k)
            out["small_night"] = small
            out["quality"].append(quality_row("ml-latest-small", last_report(small_home)))

        # 6. the page in a browser
        report = home / "report.html"
        out["report_bytes"] = report.stat().st_size
        if args.chromium:
            out["chromium"] = chromium(report, tmp, args.screenshot)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "nightly_ops.json").write_text(json.dumps(out, indent=2) + "\n")
    print_table(out)


def print_table(out: dict) -> None:
    print("| step | exit | wall s | what it shows |")
    print("| --- | --- | --- | --- |")
    for name in ("night1", "night2", "rollback", "night4", "truncated", "failed"):
        step = out[name]
        what = ""
        if name.startswith("night"):
            what = f"{step['version']}, gate {step['gate']}"
            if name == "night4":
                what += f", compared with {step['compared_with']}"
        elif name == "rollback":
            what = f"links -> {step['links']['current']}, {step['links']['latest']}"
        elif name == "truncated":
            what = (
                f"{step['rows']} of {step['of']} rows; stages {step['stages']}; "
                f"home unchanged: {step['unchanged']}"
            )
        print(f"| {name} | {step['code']} | {step['seconds']} | {what} |")
    print(f"\nstatus after the rollback: in service {out['status']['in_service']}")
    for key in ("promtool_published", "promtool_refused", "promtool_failed"):
        print(f"{key}: {out[key]}")
    print("\n| data | users | movies | k | lists: coverage | in lists | 1% most-rated's share "
          "| Gini | popularity: coverage | in lists | 1% share | Gini |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for q in out["quality"]:
        print(
            f"| {q['data']} | {q['users']} | {q['movies']} | {q['k']} "
            f"| {q['model_coverage']:.1%} | {q['model_movies_in_lists']} "
            f"| {q['model_top_1pct_share']:.1%} | {q['model_gini']:.3f} "
            f"| {q['popularity_coverage']:.1%} | {q['popularity_movies_in_lists']} "
            f"| {q['popularity_top_1pct_share']:.1%} | {q['popularity_gini']:.3f} |"
        )
    if "chromium" in out:
        c = out["chromium"]
        print(f"\nchromium: {json.dumps({k: v for k, v in c.items() if k != 'urls'})}")


if __name__ == "__main__":
    main()
