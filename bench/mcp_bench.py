#!/usr/bin/env python3
"""`tokwatch mcp` benchmark: how long an agent waits for its answers, with tokwatch's cache warm.

    python bench/mcp_bench.py --size-mb 20            # the corpus of bench/run.py (generated once)
    python bench/mcp_bench.py --corpus DIR --repeat 5

`bench/run.py` runs the same measurement (its `--skip-mcp` leaves it out). Each run starts the
installed `tokwatch mcp` on the corpus, as an agent would, through the MCP SDK's own stdio client
calling itself `claude-code` with the project of the corpus's latest Claude session as its root.
tokwatch's ledger is warm: filled once by an export before the runs.

Per run it times, on the client's clock: the start (spawn until `initialize` is answered), then
ten calls of one tool in a row; the first of them is the first call the server gets. Each tool
gets its own runs, since the first call of a server is the one that may have to wait for the
history (and `usage_report` replays every session's turns from the cache once). The figures are
medians over the runs. One more run starts with an empty ledger (cold): its first call waits for
the whole history to be read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
CALLS = 10
TOOLS: dict[str, dict[str, Any]] = {
    "session_status": {},
    "list_sessions": {"limit": 10},
    "usage_report": {"group_by": "day", "top_n": 10},
}
TARGET_FIRST_S = 0.5


def latest_claude_project(tw: list[str], corpus: Path, env: dict[str, str], out: Path) -> str:
    """Fill the ledger with an export, and pick the project of the latest Claude session."""
    subprocess.run([*tw, "export", str(corpus), "--format", "json", "-o", str(out)], env=env, check=True)
    rows = [r for r in json.loads(out.read_text()) if r["agent"] == "claude" and r["project"].startswith("/")]
    return str(max(rows, key=lambda r: r["last_seen"])["project"]) if rows else "/"


async def _one_run(
    tw: list[str], corpus: Path, env: dict[str, str], project: str, tool: str
) -> dict[str, Any]:
    import mcp_types as mt
    from mcp import ClientSession, StdioServerParameters, stdio_client

    async def roots(ctx: Any) -> mt.ListRootsResult:
        return mt.ListRootsResult(roots=[mt.Root(uri=f"file://{project}")])

    params = StdioServerParameters(command=tw[0], args=[*tw[1:], "mcp", str(corpus)], env=env, cwd="/")
    t0 = time.perf_counter()
    with open(os.devnull, "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(
                read,
                write,
                client_info=mt.Implementation(name="claude-code", version="bench"),
                list_roots_callback=roots,
            ) as session,
        ):
            await session.initialize()
            started = time.perf_counter() - t0
            times: list[float] = []
            for _ in range(CALLS):
                t = time.perf_counter()
                res = await session.call_tool(tool, TOOLS[tool])
                times.append(time.perf_counter() - t)
                if res.is_error:
                    raise RuntimeError(f"{tool}: {res.content[0].text if res.content else res}")
    return {"start": started, "calls": times}


def bench_mcp(tw: list[str], corpus: Path, work: Path, repeat: int) -> dict[str, Any]:
    import anyio

    home = work / "home-mcp"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "TOKWATCH_DATA_DIR": str(work / "data-mcp"),
        "TOKWATCH_CACHE_DIR": str(work / "cache-mcp"),
        "TOKWATCH_CONFIG": str(work / "no-config.toml"),
    }
    project = latest_claude_project(tw, corpus, env, work / "mcp-export.json")
    out: dict[str, Any] = {"project": project, "repeat": repeat, "tools": {}}
    cold_env = dict(
        env, TOKWATCH_DATA_DIR=str(work / "data-mcp-cold"), TOKWATCH_CACHE_DIR=str(work / "cache-mcp-cold")
    )
    cold = anyio.run(_one_run, tw, corpus, cold_env, project, "session_status")
    out["cold"] = {"start_s": round(cold["start"], 3), "first_s": round(cold["calls"][0], 3)}
    starts: list[float] = []
    for tool in TOOLS:
        runs = [anyio.run(_one_run, tw, corpus, env, project, tool) for _ in range(repeat)]
        starts += [r["start"] for r in runs]
        out["tools"][tool] = {
            "first_s": round(statistics.median(r["calls"][0] for r in runs), 4),
            "tenth_s": round(statistics.median(r["calls"][CALLS - 1] for r in runs), 4),
            "all_first_s": [round(r["calls"][0], 4) for r in runs],
            "all_tenth_s": [round(r["calls"][CALLS - 1], 4) for r in runs],
        }
    out["start_s"] = round(statistics.median(starts), 3)
    out["all_start_s"] = [round(s, 3) for s in starts]
    return out


def render(m: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = [("mcp: start (spawn -> initialize answered), warm", f"{m['start_s']:.2f} s", "", "")]
    if m.get("cold"):
        c = m["cold"]
        rows.append(
            (
                "mcp: cold (empty ledger): start / 1st call",
                f"{c['start_s']:.2f} s / {c['first_s']:.2f} s",
                "",
                "",
            )
        )
    for tool, t in m["tools"].items():
        ok = "MET" if t["first_s"] <= TARGET_FIRST_S else "NOT MET"
        rows.append(
            (
                f"mcp: {tool}, 1st call / 10th call, warm",
                f"{t['first_s'] * 1000:.1f} ms / {t['tenth_s'] * 1000:.1f} ms",
                f"1st <= {TARGET_FIRST_S} s",
                ok,
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    sys.path.insert(0, str(BENCH))
    import run

    p = argparse.ArgumentParser(description="tokwatch mcp: first and tenth call, warm")
    p.add_argument("--size-mb", type=float, default=260)
    p.add_argument("--corpus", type=Path)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--tokwatch", help="command to run tokwatch (default: the venv's tokwatch)")
    args = p.parse_args(argv)
    corpus = (args.corpus or BENCH / "corpus" / f"{args.size_mb:g}mb").resolve()
    manifest = run.ensure_corpus(corpus, args.size_mb, args.seed)
    print(f"machine: {run.machine_info()}", flush=True)
    print(f"corpus: {corpus}, {manifest['all']['bytes'] / run.MB:.1f} MB, {manifest['all']['turns']} turns")
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    run.warm_page_cache(corpus)
    tw = run.tokwatch_cmd(args.tokwatch)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(BENCH.parent / "tokwatch")], check=False)
    with tempfile.TemporaryDirectory(prefix="tokwatch-mcp-bench-") as tmp:
        m = bench_mcp(tw, corpus, Path(tmp), args.repeat)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    for name, value, target, status in render(m):
        print(f"{name:<52} {value:<22} {target:<14} {status}")
    print(json.dumps(m, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
