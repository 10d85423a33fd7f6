#!/usr/bin/env python3
"""The insights view on a year of history: how long its queries, its opening and its live refresh take.

    python bench/insights.py                          # 1000 sessions over 365 days (made once)
    python bench/insights.py --sessions 200 --days 90 # quick
    python bench/insights.py --rebuild                # make the history again

The history is written straight into a ledger through `Store.apply` (the one write path: every turn
priced, every session folded and saved, as a backfill would leave them) in bench/out/year-<n>/,
from a seeded generator: three agents, their current models, 40 projects, sessions spread over the
year (busier on weekdays), 20-2000 turns each with growing contexts, cache reads and writes, and
prompts past the 200k price tiers now and then. Nothing here reads logs: only the view is measured.

Measured, in this process (the app headless, `App.run_test`, with the real engine following an
empty home and the real ledger file):

* `compute`: the view's two SQL queries and their arithmetic, per range and bucket (median of 5,
  through the ledger's read connections);
* open: `i` pressed until the first count is on screen (first open, then re-opens of the kept view);
* refresh: a Claude line appended to a followed log until today's bar has grown (file event, engine,
  ledger, the view's count, the redraw), and the count alone.
Results are printed and saved to bench/out/insights-<n>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from tokwatch.core.ledger import Ledger  # noqa: E402
from tokwatch.core.models import Turn  # noqa: E402
from tokwatch.core.store import Store  # noqa: E402
from tokwatch.ingest.setup import make_pricer  # noqa: E402
from tokwatch.reports import insights as ins  # noqa: E402
from tokwatch.reports import report  # noqa: E402

AGENTS = {
    "claude": (0.6, ("claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")),
    "codex": (0.3, ("gpt-5-codex", "gpt-5.1-codex-max", "gpt-5.3-codex")),
    "gemini": (0.1, ("gemini-2.5-pro", "gemini-2.5-flash")),
}
DAY = 86400.0


def make_year(dest: Path, sessions: int, days: int, end: float, seed: int) -> dict[str, Any]:
    """Write `sessions` sessions over the `days` days before `end` into a ledger at `dest`."""
    rng = random.Random(seed)
    ledger = Ledger.at(dest)
    store = Store(make_pricer(), ledger)
    projects = [f"/home/dev/{rng.choice(('work', 'oss', 'client'))}/project-{i:02d}" for i in range(40)]
    weights = [1 / (i + 1) for i in range(len(projects))]
    total = 0
    t0 = time.perf_counter()
    for _ in range(sessions):
        agent = rng.choices(list(AGENTS), weights=[a[0] for a in AGENTS.values()])[0]
        models = AGENTS[agent][1]
        model = rng.choice(models)
        start = end - rng.random() * days * DAY
        while datetime.fromtimestamp(start, UTC).weekday() >= 5 and rng.random() < 0.6:
            start = end - rng.random() * days * DAY
        project = rng.choices(projects, weights=weights)[0]
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        turns_n = min(2000, max(20, int(rng.lognormvariate(5.0, 0.9))))
        ctx = rng.randint(8_000, 30_000)
        batch: list[Turn] = []
        ts = start
        for i in range(turns_n):
            ts += rng.uniform(5, 240)
            if ts >= end:
                break
            grow = rng.randint(200, 9_000)
            big = rng.random() < 0.03
            prompt = ctx + (230_000 if big else 0)
            miss = rng.random() < 0.05
            read = 0 if miss else prompt
            write = grow + (prompt if miss and agent == "claude" else 0)
            batch.append(
                Turn(
                    agent=agent,
                    session_id=sid,
                    turn_id=f"{sid}:{i}",
                    model=model if rng.random() > 0.1 else rng.choice(models),
                    timestamp=ts,
                    input=rng.randint(1, 3_000) if agent != "claude" else rng.randint(1, 60),
                    cache_read=read,
                    cache_write=write if agent == "claude" else 0,
                    cache_write_1h=write if agent == "claude" and rng.random() < 0.2 else 0,
                    output=rng.randint(50, 5_000),
                    reasoning=rng.randint(0, 2_000) if agent == "codex" else 0,
                    project=project,
                )
            )
            ctx = 15_000 if ctx > 170_000 else ctx + grow
        store.apply(batch, report=False)
        total += len(batch)
    seconds = time.perf_counter() - t0
    # the rate cards, saved as the engine saves them: a start never resolves them again
    import orjson

    ledger.set_meta("pricing", store.pricer.key())
    ledger.set_meta("cards", orjson.dumps(store.pricer.cards_rows()).decode())
    ledger.close()
    return {"sessions": sessions, "turns": total, "days": days, "seconds_to_write": round(seconds, 1)}


def median_ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1000, 1)


def bench_compute(path: Path, today: date, repeat: int) -> list[dict[str, Any]]:
    store = Store(make_pricer(), Ledger.at(path.parent))
    reader = store.ledger
    store.load()
    models = {(s.agent, m) for s in store.sessions.values() for m in s.by_model}
    out = []
    for days in ins.RANGES:
        for bucket in ins.BUCKETS:
            q = ins.Query(days, bucket, "model")
            times = []
            d = None
            for _ in range(repeat):
                t = time.perf_counter()
                d = ins.compute(
                    reader, report.Filters().scope(store), q, today, None, store.pricer.card, models
                )
                times.append(time.perf_counter() - t)
            assert d is not None
            out.append(
                {
                    "days": days,
                    "bucket": bucket,
                    "median_ms": median_ms(times),
                    "max_ms": round(max(times) * 1000, 1),
                    "turns": d.totals.turns,
                    "sessions": d.session_count,
                    "bars": len(d.periods),
                }
            )
    store.ledger.close()
    return out


async def bench_app(
    data_dir: Path, home: Path, opens: int, refreshes: int, size: tuple[int, int]
) -> dict[str, Any]:
    from tokwatch.config import Config
    from tokwatch.ingest.engine import Engine
    from tokwatch.ui.app import TokwatchApp
    from tokwatch.ui.chart import BarChart
    from tokwatch.ui.insights import InsightsScreen

    logs = home / ".claude" / "projects" / "-home-dev-live"
    logs.mkdir(parents=True, exist_ok=True)
    live = logs / "live.jsonl"
    live.write_bytes(b"")
    config = Config()
    store = Store(make_pricer(config), Ledger.at(data_dir))
    engine = Engine(store, None)
    app = TokwatchApp(engine, config=config)
    res: dict[str, Any] = {"size": f"{size[0]}x{size[1]}"}
    async with app.run_test(size=size) as pilot:
        t = time.perf_counter()
        while not app.loaded:
            if time.perf_counter() - t > 120:
                raise SystemExit("the dashboard never loaded")
            await pilot.pause(0.01)
        res["dashboard_loaded_s"] = round(time.perf_counter() - t, 2)
        print(f"  {size}: dashboard loaded in {res['dashboard_loaded_s']} s", flush=True)
        res["sessions_shown"] = len(store.sessions)
        open_times: list[float] = []
        counts: list[float] = []
        for i in range(opens):
            t = time.perf_counter()
            await pilot.press("i")
            screen = app.screen
            assert isinstance(screen, InsightsScreen)
            while screen.data is None or screen._busy:
                if time.perf_counter() - t > 60:
                    raise SystemExit("the view never counted")
                await pilot.pause(0.005)
            await pilot.pause()  # drawn
            open_times.append(time.perf_counter() - t)
            counts.append(screen.data.seconds)
            if i < opens - 1:
                await pilot.press("escape")
                await pilot.pause()
        res["open_first_ms"] = round(open_times[0] * 1000, 1)
        res["open_again_median_ms"] = median_ms(open_times[1:]) if len(open_times) > 1 else None
        res["count_median_ms"] = median_ms(counts)
        chart = screen.query_one("#cost-chart", BarChart)
        refresh: list[float] = []
        count_live: list[float] = []
        run = uuid.uuid4().hex[:8]
        for n in range(refreshes):
            before = screen.data.periods[-1].tokens.turns
            line = {
                "type": "assistant", "isSidechain": False, "cwd": "/home/dev/live", "sessionId": "live",
                "message": {"model": "claude-opus-4-6", "id": f"msg_live_{run}_{n}", "role": "assistant",
                            "usage": {"input_tokens": 10, "cache_read_input_tokens": 40_000,
                                      "cache_creation_input_tokens": 1_000, "output_tokens": 900}},
                "requestId": f"req_live_{run}_{n}",
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            }  # fmt: skip
            t = time.perf_counter()
            with open(live, "a") as f:
                f.write(json.dumps(line) + "\n")
            while not (screen.data.periods[-1].tokens.turns > before and not screen._busy):
                if time.perf_counter() - t > 30:
                    live_s = [k for k in store.sessions if k[1] == "live"]
                    raise SystemExit(
                        f"the appended turn never showed: live sessions {live_s}, skips {dict(engine.skips.by_file)},"
                        f" followed {len(engine.files)}, busy {screen._busy} pending {screen._pending}"
                        f" past {screen.counter.past_queries} last {screen.data.periods[-1].key}"
                        f" {screen.data.periods[-1].tokens.turns} today {screen.data.today} current {screen.is_current}"
                        f" ledger {store.ledger.count_turns()}"
                    )
                await pilot.pause(0.005)
            await pilot.pause()
            refresh.append(time.perf_counter() - t)
            count_live.append(screen.data.seconds)
            assert chart.bars[-1].total > 0
            await pilot.pause(0.3)  # (turns arrive seconds apart, not in one burst)
        res["append_to_bar_median_ms"] = median_ms(refresh)
        res["append_to_bar_max_ms"] = round(max(refresh) * 1000, 1)
        res["live_count_median_ms"] = median_ms(count_live)
        await pilot.press("q")
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=1000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--opens", type=int, default=6)
    p.add_argument("--refreshes", type=int, default=10)
    p.add_argument("--rebuild", action="store_true")
    a = p.parse_args(argv)
    out = BENCH / "out"
    dest = out / f"year-{a.sessions}"
    meta = dest / "history.json"
    end = time.time()
    if a.rebuild or not meta.exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        info = make_year(dest, a.sessions, a.days, end, a.seed)
        meta.write_text(json.dumps(info))
    info = json.loads(meta.read_text())
    path = dest / "ledger.db"
    info["ledger_mb"] = round(path.stat().st_size / 1e6, 1)
    print(f"history: {info}", flush=True)
    today = report.local_date(time.time(), None)
    res: dict[str, Any] = {"history": info, "load_avg": os.getloadavg()}
    res["compute"] = bench_compute(path, today, a.repeat)
    for r in res["compute"]:
        print(f"compute {r['days']:>3} days by {r['bucket']:<5}: {r['median_ms']:>7} ms median"
              f" (max {r['max_ms']}), {r['turns']:,} turns, {r['sessions']} sessions, {r['bars']} bars")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env_keep = dict(os.environ)
        os.environ["HOME"] = str(home)
        for k in list(os.environ):
            if k.endswith(("_HOME", "_CONFIG_DIR", "_DIR")) and k not in ("TOKWATCH_DATA_DIR",):
                del os.environ[k]
        os.environ["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")
        os.environ["TOKWATCH_CACHE_DIR"] = str(Path(tmp) / "cache")
        try:
            for size in ((100, 30), (60, 30), (200, 50)):
                # a copy of the history for each run: the live turns it appends stay out of it
                work = Path(tmp) / f"data-{size[0]}"
                work.mkdir()
                shutil.copy2(path, work / "ledger.db")
                r = asyncio.run(bench_app(work, home, a.opens, a.refreshes, size))
                print(f"app {r}", flush=True)
                res.setdefault("app", []).append(r)
        finally:
            os.environ.clear()
            os.environ.update(env_keep)
    res["load_avg_after"] = os.getloadavg()
    (out / f"insights-{a.sessions}.json").write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
