#!/usr/bin/env python3
"""tokwatch benchmark: export speed (cold, warm, --no-cache), peak RSS, live latency, idle CPU,
the dashboard in a real terminal (launch to first paint and to every session listed, cold and
warm), the MCP server's first and tenth answers (bench/mcp_bench.py), and the same corpus
through ccusage and claude-monitor when they can be installed here.

    python bench/run.py                       # 260 MB corpus in bench/corpus/260mb (generated once)
    python bench/run.py --size-mb 20          # quick
    python bench/run.py --corpus DIR --skip-others --profile
    python bench/run.py --only-dashboard --skip-others   # just the dashboard figures

Every export is checked against the corpus's MANIFEST.json (exact token totals per agent).
Results are printed as a table and saved to bench/out/results-<size>mb.json.

Notes on method:
- The OS page cache is warmed (every corpus file read once) before anything is timed, so "cold"
  means "tokwatch's own state is empty" (TOKWATCH_CACHE_DIR and TOKWATCH_DATA_DIR point at a fresh
  folder: the cache of older builds, the ledger of newer ones), not "disk cold".
- Every tool runs in a fresh process with HOME set to an empty folder, so no user config, cache or
  real agent logs leak in. Peak RSS comes from os.wait4() on that process.
- Exports are written to a file in a temporary folder, never `-o /dev/null`: tokwatch writes
  atomically (temp file + rename), and as root a rename onto /dev/null would replace the device.
- The dashboard runs in a tmux pane (bench/terminal.py) of 100 x 30; the screen is read every
  20 ms. "First paint" is the first screen showing the dashboard's frame; "all listed" the first
  showing every session the export finds, with history read. Times are from just before tmux
  starts the command, so they include Python's start-up and tmux's (a few ms).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
TOOLS = BENCH / ".tools"
MB = 1_000_000
KEYS = ("input", "cache_read", "cache_write", "output", "turns")
EXPORT_KEYS = {
    "input": "input_tokens",
    "cache_read": "cache_read_tokens",
    "cache_write": "cache_write_tokens",
    "output": "output_tokens",
    "turns": "turns",
}
#: ccusage's latest npm release sometimes lacks its native linux-x64 package; fall back to a known one.
CCUSAGE_SPECS = ("ccusage@latest", "ccusage@20.0.24")

TARGETS = {
    "cold_ratio": 1.0,  # tokwatch cold export time / ccusage time, Claude part
    "warm_ratio": 0.2,  # warm / cold
    "rss_mb": 150.0,
    "live_p50_ms": 100.0,
    "idle_cpu_pct": 1.0,
}


# --------------------------------------------------------------------------- helpers
@dataclass
class Run:
    seconds: float
    max_rss_mb: float
    rc: int
    stderr: str = ""
    cpu_seconds: float = 0.0  # user + sys of the process tree


@dataclass
class Results:
    machine: dict[str, Any] = field(default_factory=dict)
    corpus: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)
    others: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def machine_info() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def git_info() -> dict[str, Any]:
    """The commit measured, and whether tokwatch/ differs from it (others edit concurrently)."""
    root = BENCH.parent

    def git(*a: str) -> str:
        r = subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    dirty = [ln[3:] for ln in git("status", "--porcelain", "--", "tokwatch").splitlines() if ln]
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "subject": git("log", "-1", "--format=%s"),
        "tokwatch_uncommitted": dirty,
    }


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    env.update(extra)
    if "TOKWATCH_CACHE_DIR" in extra:  # tokwatch's state: the cache (0.1) or the ledger (later)
        env["TOKWATCH_DATA_DIR"] = extra["TOKWATCH_CACHE_DIR"]
    return env


def measure(cmd: Sequence[str], env: dict[str, str], stdout: Path | None = None) -> Run:
    """Run `cmd` in a fresh process; wall time and that process tree's peak RSS (os.wait4)."""
    with (
        open(stdout or os.devnull, "wb") as out,
        tempfile.TemporaryFile() as err,
    ):
        t0 = time.perf_counter()
        p = subprocess.Popen(list(cmd), env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    return Run(seconds, ru.ru_maxrss / 1024, p.returncode, text[-2000:], ru.ru_utime + ru.ru_stime)


def walk_files(root: Path) -> Iterator[Path]:
    for dirpath, _, files in os.walk(root):
        for f in files:
            yield Path(dirpath) / f


def warm_page_cache(root: Path) -> int:
    n = 0
    for p in walk_files(root):
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                n += len(chunk)
    return n


def tokwatch_cmd(arg: str | None) -> list[str]:
    if arg:
        return arg.split()
    exe = Path(sys.executable).parent / "tokwatch"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("tokwatch")
    return [found] if found else [sys.executable, "-m", "tokwatch"]


def export_totals(path: Path) -> dict[str, dict[str, int]]:
    rows = orjson.loads(path.read_bytes())
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(KEYS, 0))
    for r in rows:
        t = out[r["agent"]]
        for k, col in EXPORT_KEYS.items():
            t[k] += int(r[col] or 0)
    return dict(out)


def compare(manifest: dict[str, Any], got: dict[str, dict[str, int]], agents: Sequence[str]) -> str:
    bad = []
    for a in agents:
        want = manifest["agents"][a]
        have = got.get(a, dict.fromkeys(KEYS, 0))
        for k in KEYS:
            if want[k] != have[k]:
                bad.append(f"{a}.{k}: got {have[k]} want {want[k]}")
    return "OK" if not bad else "MISMATCH (" + "; ".join(bad[:6]) + ")"


def pct(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


# --------------------------------------------------------------------------- corpus
def ensure_corpus(corpus: Path, size_mb: float, seed: int) -> dict[str, Any]:
    manifest = corpus / "MANIFEST.json"
    if not manifest.exists():
        print(f"# generating a {size_mb:g} MB corpus in {corpus} ...", flush=True)
        subprocess.run(
            [
                sys.executable,
                str(BENCH / "make_corpus.py"),
                "--size-mb",
                str(size_mb),
                "--out",
                str(corpus),
                "--seed",
                str(seed),
                "--force",
            ],
            check=True,
        )
    data: dict[str, Any] = json.loads(manifest.read_text())
    return data


# --------------------------------------------------------------------------- tokwatch export
def export_help(tw: list[str], env: dict[str, str]) -> str:
    r = subprocess.run([*tw, "export", "--help"], env=env, capture_output=True, text=True)
    return r.stdout + r.stderr


def bench_export(
    tw: list[str],
    target: Path,
    agents: Sequence[str],
    manifest: dict[str, Any],
    work: Path,
    repeat: int,
    no_cache: bool,
    res: Results,
    label: str,
) -> dict[str, Any]:
    """Cold (fresh cache) x repeat, warm (cache from the last cold run) x repeat, --no-cache x repeat."""
    home = work / "home"
    home.mkdir(exist_ok=True)
    size = sum(manifest["agents"][a]["bytes"] for a in agents)
    out: dict[str, Any] = {"bytes": size}
    cache = work / f"cache-{label}-0"

    def one(kind: str, cache_dir: Path, extra: Sequence[str] = ()) -> Run:
        dest = work / f"export-{label}-{kind}.json"
        cmd = [*tw, "export", str(target), "--format", "json", "-o", str(dest), *extra]
        r = measure(cmd, clean_env(home, TOKWATCH_CACHE_DIR=str(cache_dir)))
        if r.rc != 0:
            res.checks[f"{label} {kind}"] = f"FAILED rc={r.rc}: {r.stderr.strip()[-300:]}"
            return r
        verdict = compare(manifest, export_totals(dest), agents)
        prev = res.checks.get(f"{label} {kind}")
        if prev is None or prev == "OK":
            res.checks[f"{label} {kind}"] = verdict
        return r

    cold: list[Run] = []
    for i in range(repeat):
        cache = work / f"cache-{label}-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir()
        cold.append(one("cold", cache))
    warm = [one("warm", cache) for _ in range(repeat)]
    runs = {"cold": cold, "warm": warm}
    if no_cache:
        nc = work / f"cache-{label}-nocache"
        nc.mkdir(exist_ok=True)
        runs["no_cache"] = [one("no-cache", nc, ["--no-cache"]) for _ in range(repeat)]
    for kind, rs in runs.items():
        secs = statistics.median(r.seconds for r in rs)
        out[kind] = {
            "seconds": round(secs, 3),
            "all_seconds": [round(r.seconds, 3) for r in rs],
            "mb_per_s": round(size / MB / secs, 1),
            "max_rss_mb": round(max(r.max_rss_mb for r in rs), 1),
            "cpu_seconds": round(statistics.median(r.cpu_seconds for r in rs), 3),
        }
    with contextlib.suppress(OSError):
        out["cache_dir_bytes"] = sum(p.stat().st_size for p in walk_files(cache))
    return out


def profile_export(target: Path, work: Path, top: int = 15) -> str:
    """cProfile of a cold export, then a warm one on the cache it left, in this process (the same
    code path as `tokwatch export`; the profiler roughly doubles the times)."""
    from tokwatch import cli

    dest = work / "export-profile.json"
    names = ("TOKWATCH_CACHE_DIR", "TOKWATCH_DATA_DIR")
    saved = {n: os.environ.get(n) for n in names}
    for n in names:
        os.environ[n] = str(work / "cache-profile")
    buf = io.StringIO()
    try:
        for kind in ("cold", "warm"):
            prof = cProfile.Profile()
            t0 = time.perf_counter()
            prof.runcall(cli.main, ["export", str(target), "--format", "json", "-o", str(dest)])
            wall = time.perf_counter() - t0
            st = pstats.Stats(prof, stream=buf)
            st.strip_dirs()
            buf.write(f"==== cProfile of a {kind} export: {wall:.2f} s under the profiler\n")
            st.sort_stats("tottime").print_stats(top)
            st.sort_stats("cumulative").print_stats(top)
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v
    return re.sub(r"\n{3,}", "\n\n", buf.getvalue())


def bench_startup(tw: list[str], work: Path, repeat: int) -> dict[str, Any]:
    """Fixed cost: an export of an empty folder (interpreter start, imports, writing `[]`)."""
    empty = work / "empty"
    empty.mkdir(exist_ok=True)
    home = work / "home"
    cmd = [*tw, "export", str(empty), "--format", "json", "-o", str(work / "empty.json")]
    runs = [
        measure(cmd, clean_env(home, TOKWATCH_CACHE_DIR=str(work / "cache-empty"))) for _ in range(repeat)
    ]
    return {
        "seconds": round(statistics.median(r.seconds for r in runs), 3),
        "max_rss_mb": round(max(r.max_rss_mb for r in runs), 1),
    }


# --------------------------------------------------------------------------- live
def claude_line(sid: str, cwd: str, i: int, rng: random.Random) -> bytes:
    sys.path.insert(0, str(BENCH))
    import loglines

    mid = f"msg_01BENCH{i:04d}" + "".join(rng.choices("abcdefghijkmnopqrstuvwxyz", k=12))
    line = loglines.claude_assistant(
        loglines.claude_header(session_id=sid, cwd=cwd),
        model="claude-opus-4-6",
        message_id=mid,
        request_id=f"req_011CBENCH{i:04d}",
        uuid=f"00000000-0000-4000-8000-{i:012d}",
        content=[{"type": "text", "text": "benchmark line"}],
        stop_reason="end_turn",
        usage={
            "input_tokens": 3,
            "cache_creation_input_tokens": 120,
            "cache_read_input_tokens": 40_000 + i,
            "output_tokens": 50 + i,
            "service_tier": "standard",
        },
    )
    return loglines.jsonl(line)


def proc_cpu_ticks(pid: int) -> int:
    s = Path(f"/proc/{pid}/stat").read_text()
    rest = s[s.rfind(")") + 2 :].split()
    return int(rest[11]) + int(rest[12])  # utime + stime (fields 14, 15)


def bench_live(tw: list[str], work: Path, n: int, idle_seconds: float, res: Results) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH))
    import make_corpus

    live = work / "live"
    shutil.rmtree(live, ignore_errors=True)
    live.mkdir()
    make_corpus.Gen(live, 0.3, 42).run()  # a few files of each agent
    mains = sorted(p for p in (live / "claude").rglob("*.jsonl") if "subagents" not in p.parts)
    target = mains[0]
    first = orjson.loads(target.open("rb").readline() or b"{}")
    sid = target.stem
    cwd = str(first.get("cwd") or "/home/dev/live") if isinstance(first, dict) else "/home/dev/live"
    home = work / "home"
    home.mkdir(exist_ok=True)
    env = clean_env(home, TOKWATCH_CACHE_DIR=str(work / "cache-live"), PYTHONUNBUFFERED="1")
    t_start = time.perf_counter()
    p = subprocess.Popen(
        [*tw, "watch", str(live), "--jsonl"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    ready = threading.Event()
    arrived: dict[str, float] = {}
    got = threading.Condition()
    ready_at: list[float] = []

    def reader() -> None:
        assert p.stdout is not None
        for raw in p.stdout:
            now = time.perf_counter()
            try:
                ev = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if ev.get("event") == "ready":
                ready_at.append(now)
                ready.set()
                continue
            m = re.search(r"msg_01BENCH(\d{4})", str(ev.get("turn_id", "")))
            if m:
                with got:
                    arrived.setdefault(m.group(1), now)
                    got.notify_all()

    threading.Thread(target=reader, daemon=True).start()
    out: dict[str, Any] = {}
    try:
        if not ready.wait(120):
            res.checks["live"] = "FAILED: no ready event within 120 s"
            return out
        out["startup_to_ready_s"] = round(ready_at[0] - t_start, 3)
        time.sleep(0.5)
        rng = random.Random(7)
        lat: list[float] = []
        missed = 0
        with open(target, "ab") as f:
            for i in range(n):
                line = claude_line(sid, cwd, i, rng)
                key = f"{i:04d}"
                t0 = time.perf_counter()
                f.write(line)
                f.flush()
                deadline = t0 + 5.0
                with got:
                    while key not in arrived and time.perf_counter() < deadline:
                        got.wait(deadline - time.perf_counter())
                if key in arrived:
                    lat.append((arrived[key] - t0) * 1000)
                else:
                    missed += 1
                time.sleep(rng.uniform(0.15, 0.35))
        if lat:
            out.update(
                {
                    "n": len(lat),
                    "missed": missed,
                    "p50_ms": round(statistics.median(lat), 1),
                    "p95_ms": round(pct(lat, 0.95), 1),
                    "max_ms": round(max(lat), 1),
                }
            )
        res.checks["live"] = "OK" if not missed else f"MISSED {missed}/{n} turn events"
        # idle CPU: nothing changes for idle_seconds
        time.sleep(1.0)
        tck = os.sysconf("SC_CLK_TCK")
        c0, w0 = proc_cpu_ticks(p.pid), time.perf_counter()
        time.sleep(idle_seconds)
        c1, w1 = proc_cpu_ticks(p.pid), time.perf_counter()
        out["idle_seconds"] = round(w1 - w0, 2)
        out["idle_cpu_pct"] = round((c1 - c0) / tck / (w1 - w0) * 100, 2)
        out["idle_cpu_ticks"] = c1 - c0
        out["clk_tck"] = tck
        with contextlib.suppress(OSError):
            for st in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if st.startswith("VmHWM:"):
                    out["watch_peak_rss_mb"] = round(int(st.split()[1]) / 1024, 1)
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return out


# --------------------------------------------------------------------------- other tools
# --------------------------------------------------------------------------- the dashboard
def bench_dashboard(tw: list[str], corpus: Path, work: Path, repeat: int, res: Results) -> dict[str, Any]:
    """Launch -> first paint and -> every session listed, in a real terminal, cold then warm."""
    sys.path.insert(0, str(BENCH))
    import terminal

    if not terminal.available():
        res.checks["dashboard"] = "SKIPPED: tmux is not installed"
        return {}
    home = work / "dash-home"
    home.mkdir(exist_ok=True)
    roots = [str(corpus / a) for a in ("claude", "codex", "gemini") if (corpus / a).is_dir()]
    listed = subprocess.run(
        [*tw, "export", "--no-cache", "--format", "json", "-o", str(work / "dash-sessions.json"), *roots],
        env=clean_env(home, TOKWATCH_CACHE_DIR=str(work / "dash-nocache")),
        capture_output=True,
    )
    if listed.returncode != 0:
        res.checks["dashboard"] = f"FAILED: export rc={listed.returncode}"
        return {}
    rows = orjson.loads((work / "dash-sessions.json").read_bytes())
    want = len({(r["agent"], r["session_id"]) for r in rows})
    total = re.compile(r"─ (\d+) ─╯")

    def painted(screen: str) -> bool:
        return "╭─ Sessions" in screen

    def all_listed(screen: str) -> bool:
        m = total.search(screen)
        return "Reading history" not in screen and m is not None and int(m.group(1)) == want

    def one(cache: Path) -> dict[str, float]:
        env = clean_env(home, TOKWATCH_CACHE_DIR=str(cache), TERM="xterm-256color")
        env.pop("COLUMNS", None)
        env.pop("NO_COLOR", None)
        with terminal.Tmux(100, 30) as t:
            t0 = time.perf_counter()
            t.start([*tw, *roots], env, cwd=home)
            t.wait_for(painted, 300, "first paint")
            first = time.perf_counter() - t0
            t.wait_for(all_listed, 600, f"all {want} sessions")
            done = time.perf_counter() - t0
            t.send("q")
            rc = t.wait_exit(120)
        if rc != 0:
            res.checks["dashboard"] = f"FAILED: exit code {rc}"
        return {"first_paint": first, "all_listed": done}

    out: dict[str, Any] = {"sessions": want, "terminal": "tmux 100x30"}
    for kind in ("cold", "warm"):
        runs = []
        for i in range(repeat):
            cache = work / f"dash-cache-{i}"
            if kind == "cold":
                shutil.rmtree(cache, ignore_errors=True)
                cache.mkdir()
            runs.append(one(cache))
            print(f"  dashboard {kind} {i + 1}/{repeat}: {runs[-1]}", flush=True)
        out[kind] = {
            k: round(statistics.median(r[k] for r in runs), 3) for k in ("first_paint", "all_listed")
        } | {"all": [{k: round(v, 3) for k, v in r.items()} for r in runs]}
    res.checks.setdefault("dashboard", "OK")
    return out


def ensure_ccusage(res: Results) -> Path | None:
    exe = TOOLS / "node_modules" / ".bin" / "ccusage"

    def works() -> str | None:
        if not exe.exists():
            return None
        r = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    if works():
        return exe
    if not shutil.which("npm"):
        res.notes.append("ccusage: npm not found, skipped")
        return None
    TOOLS.mkdir(parents=True, exist_ok=True)
    for spec in CCUSAGE_SPECS:
        print(f"# npm install --prefix {TOOLS} {spec}", flush=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(TOOLS), "--no-save", spec], capture_output=True, text=True
        )
        if works():
            if spec != CCUSAGE_SPECS[0]:
                res.notes.append(f"ccusage: {CCUSAGE_SPECS[0]} has no working linux binary here; used {spec}")
            return exe
    res.notes.append("ccusage: could not be installed")
    return None


def ccusage_totals(path: Path, unified: bool) -> dict[str, dict[str, int]]:
    d = orjson.loads(path.read_bytes())
    keys = {
        "input": "inputTokens",
        "cache_read": "cacheReadTokens",
        "cache_write": "cacheCreationTokens",
        "output": "outputTokens",
    }
    out: dict[str, Counter[str]] = defaultdict(Counter)
    if not unified:
        t = d.get("totals", {})
        out["claude"] = Counter({k: int(t.get(v, 0)) for k, v in keys.items()})
        return {a: dict(c) for a, c in out.items()}
    for day in d.get("daily", []):
        for a in day.get("agents", []):
            for k, v in keys.items():
                out[a["agent"]][k] += int(a.get(v, 0))
    return {a: dict(c) for a, c in out.items()}


def bench_ccusage(exe: Path, corpus: Path, work: Path, repeat: int) -> dict[str, Any]:
    home = work / "home-ccusage"
    home.mkdir(exist_ok=True)
    out: dict[str, Any] = {}
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    out["version"] = r.stdout.strip()
    jobs = {
        "claude": (
            [str(exe), "claude", "daily", "--json", "--offline"],
            clean_env(home, CLAUDE_CONFIG_DIR=str(corpus / "claude")),
            False,
        ),
        "all": (
            [str(exe), "daily", "--json", "--offline", "--by-agent"],
            clean_env(
                home,
                CLAUDE_CONFIG_DIR=str(corpus / "claude"),
                CODEX_HOME=str(corpus / "codex"),
                GEMINI_DATA_DIR=str(corpus / "gemini"),
            ),
            True,
        ),
    }
    for name, (cmd, env, unified) in jobs.items():
        dest = work / f"ccusage-{name}.json"
        runs = [measure(cmd, env, stdout=dest) for _ in range(repeat)]
        ok = all(r.rc == 0 for r in runs)
        out[name] = {
            "cmd": " ".join(cmd[1:]),
            "seconds": round(statistics.median(r.seconds for r in runs), 3),
            "all_seconds": [round(r.seconds, 3) for r in runs],
            "max_rss_mb": round(max(r.max_rss_mb for r in runs), 1),
            "cpu_seconds": round(statistics.median(r.cpu_seconds for r in runs), 3),
            "rc": runs[-1].rc,
        }
        if ok:
            out[name]["totals"] = ccusage_totals(dest, unified)
        else:
            out[name]["stderr"] = runs[-1].stderr[-500:]
    return out


def ensure_claude_monitor(res: Results) -> Path | None:
    venv = TOOLS / "venv"
    exe = venv / "bin" / "claude-monitor"
    if exe.exists():
        return exe
    print(f"# pip install claude-monitor into {venv}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=False)
    r = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "claude-monitor"], capture_output=True, text=True
    )
    if r.returncode != 0 or not exe.exists():
        res.notes.append("claude-monitor: pip install failed: " + r.stderr.strip()[-200:])
        return None
    return exe


def bench_claude_monitor(exe: Path, corpus: Path, work: Path, repeat: int) -> dict[str, Any]:
    """claude-monitor has no batch report: `--once` prints only the live 5-hour block (empty for an
    old corpus). `--view daily` renders the full history table, then waits for Ctrl+C: time until
    that prompt appears, then send SIGINT."""
    home = work / "home-cmon"
    home.mkdir(exist_ok=True)
    env = clean_env(home, PYTHONUNBUFFERED="1")
    cmd = [
        str(exe),
        "--view",
        "daily",
        "--data-paths",
        str(corpus / "claude"),
        "--no-api",
        "--no-warehouse",
        "--no-write-state",
        "--plan",
        "custom",
    ]
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=env)
    out: dict[str, Any] = {"version": (r.stdout.strip().splitlines() or ["?"])[-1], "cmd": " ".join(cmd[1:])}
    times: list[float] = []
    rss: list[float] = []
    text = ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        assert p.stdout is not None
        chunks: list[bytes] = []
        seen = False
        for raw in p.stdout:
            chunks.append(raw)
            if b"Press Ctrl+C to exit" in raw:
                times.append(time.perf_counter() - t0)
                seen = True
                p.send_signal(signal.SIGINT)
                break
        if not seen:
            times.append(time.perf_counter() - t0)
        with contextlib.suppress(Exception):
            rest = p.stdout.read()
            chunks.append(rest)
        _, _, ru = os.wait4(p.pid, 0)
        p.returncode = 0
        rss.append(ru.ru_maxrss / 1024)
        text = b"".join(chunks).decode(errors="replace")
        if not seen:
            out["error"] = text[-500:]
            break
    out["seconds"] = round(statistics.median(times), 3)
    out["all_seconds"] = [round(t, 3) for t in times]
    out["max_rss_mb"] = round(max(rss), 1)
    m = re.search(r"Total Tokens:\s*([\d,]+)", text)
    if m:
        out["total_tokens"] = int(m.group(1).replace(",", ""))
    m = re.search(r"Entries:\s*([\d,]+)", text)
    if m:
        out["entries"] = int(m.group(1).replace(",", ""))
    once = subprocess.run(
        [
            str(exe),
            "--once",
            "--output",
            "json",
            "--data-paths",
            str(corpus / "claude"),
            "--no-api",
            "--no-warehouse",
            "--no-write-state",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    with contextlib.suppress(ValueError):
        snap = json.loads(once.stdout)
        out["once_json"] = {
            "rc": once.returncode,
            "status": snap.get("status"),
            "local_tokens": snap.get("local", {}).get("tokens"),
        }
    return out


# --------------------------------------------------------------------------- report
def status(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "MET" if value <= target else "NOT MET"


def render(res: Results) -> str:
    f = res.figures
    lines: list[str] = []
    m = res.machine
    lines.append(f"machine: {m['nproc']} CPUs, {m['cpu']}, {m['memory']} RAM, Python {m['python']}")
    if m.get("loadavg_start") is not None:
        lines.append(
            f"load average (1 min) at start {m['loadavg_start']:.2f}, at end {m.get('loadavg_end', 0):.2f}"
        )
    g = m.get("git", {})
    dirty = g.get("tokwatch_uncommitted") or []
    lines.append(
        f"tokwatch at {g.get('commit', '?')} ({g.get('subject', '')})"
        + (f", plus uncommitted changes in {len(dirty)} tokwatch/ files" if dirty else "")
    )
    c = res.corpus
    lines.append(
        f"corpus:  {c['path']}  {c['bytes'] / MB:.1f} MB in {c['files']} files, {c['turns']} turns "
        f"(claude {c['claude_mb']:.1f} MB, codex {c['codex_mb']:.1f} MB, gemini {c['gemini_mb']:.1f} MB)"
    )
    lines.append("")
    rows: list[tuple[str, str, str, str]] = []
    w = f.get("export_all", {})
    cl = f.get("export_claude", {})
    cc = res.others.get("ccusage", {})

    def exp(d: dict[str, Any], kind: str) -> str:
        x = d.get(kind)
        return f"{x['seconds']:.2f} s  {x['mb_per_s']:.0f} MB/s  cpu {x['cpu_seconds']:.2f} s" if x else "-"

    if f.get("startup"):
        rows.append(("tokwatch startup (export of empty dir)", f"{f['startup']['seconds']:.2f} s", "", ""))
    d = f.get("dashboard") or {}
    for kind in ("cold", "warm"):
        x = d.get(kind)
        if x:
            rows.append(
                (
                    f"dashboard {kind}: first paint / all {d['sessions']} listed",
                    f"{x['first_paint']:.2f} s / {x['all_listed']:.2f} s",
                    "",
                    res.checks.get("dashboard", ""),
                )
            )

    rows.append(("tokwatch cold export, whole corpus", exp(w, "cold"), "", res.checks.get("all cold", "")))
    warm_ratio = (w["warm"]["seconds"] / w["cold"]["seconds"]) if w.get("warm") and w.get("cold") else None
    rows.append(
        (
            "tokwatch warm export, whole corpus",
            exp(w, "warm"),
            f"<= {TARGETS['warm_ratio']}x cold",
            res.checks.get("all warm", ""),
        )
    )
    rows.append(
        (
            "  warm / cold",
            "-" if warm_ratio is None else f"{warm_ratio:.2f}x",
            f"<= {TARGETS['warm_ratio']}",
            status(warm_ratio, TARGETS["warm_ratio"]),
        )
    )
    if w.get("no_cache"):
        rows.append(
            ("tokwatch --no-cache export, whole", exp(w, "no_cache"), "", res.checks.get("all no-cache", ""))
        )
    else:
        rows.append(("tokwatch --no-cache export", "flag not present", "", ""))
    if w.get("cache_dir_bytes") is not None:
        rows.append(
            (
                "  tokwatch cache after cold run",
                f"{w['cache_dir_bytes'] / MB:.2f} MB",
                "",
                "cache in use" if w["cache_dir_bytes"] else "no cache written",
            )
        )
    rss = max((w.get(k, {}).get("max_rss_mb", 0) for k in ("cold", "warm", "no_cache")), default=0) or None
    rows.append(
        (
            "tokwatch export peak RSS",
            "-" if rss is None else f"{rss:.0f} MB",
            f"<= {TARGETS['rss_mb']:.0f} MB",
            status(rss, TARGETS["rss_mb"]),
        )
    )
    rows.append(("tokwatch cold export, Claude part", exp(cl, "cold"), "", res.checks.get("claude cold", "")))
    ratio = None
    if cc.get("claude", {}).get("seconds") and cl.get("cold"):
        ratio = cl["cold"]["seconds"] / cc["claude"]["seconds"]
        rows.append(
            (
                "ccusage claude daily --json (Claude)",
                f"{cc['claude']['seconds']:.2f} s  "
                f"{res.corpus['claude_mb'] / cc['claude']['seconds']:.0f} MB/s  "
                f"cpu {cc['claude']['cpu_seconds']:.2f} s  {cc['claude']['max_rss_mb']:.0f} MB RSS",
                "",
                "",
            )
        )
        rows.append(
            (
                "  tokwatch cold / ccusage (Claude)",
                f"{ratio:.2f}x",
                f"<= {TARGETS['cold_ratio']}",
                status(ratio, TARGETS["cold_ratio"]),
            )
        )
        cpu_ratio = cl["cold"]["cpu_seconds"] / max(cc["claude"]["cpu_seconds"], 1e-9)
        rows.append(("  same, CPU time (user+sys) ratio", f"{cpu_ratio:.2f}x", "", "(less noisy)"))
        if cl.get("warm"):
            rows.append(
                (
                    "  tokwatch warm / ccusage (Claude)",
                    f"{cl['warm']['seconds'] / cc['claude']['seconds']:.2f}x",
                    "",
                    "",
                )
            )
    else:
        rows.append(
            ("  tokwatch cold / ccusage (Claude)", "ccusage not run", f"<= {TARGETS['cold_ratio']}", "n/a")
        )
    if cc.get("all", {}).get("seconds") and w.get("cold"):
        rows.append(
            (
                "ccusage daily --json (all agents)",
                f"{cc['all']['seconds']:.2f} s  cpu {cc['all']['cpu_seconds']:.2f} s  "
                f"{cc['all']['max_rss_mb']:.0f} MB RSS",
                "",
                "",
            )
        )
        rows.append(
            ("  tokwatch cold / ccusage (all)", f"{w['cold']['seconds'] / cc['all']['seconds']:.2f}x", "", "")
        )
    cm = res.others.get("claude_monitor", {})
    if cm.get("seconds"):
        rows.append(
            (
                "claude-monitor --view daily (Claude)",
                f"{cm['seconds']:.2f} s  {cm['max_rss_mb']:.0f} MB RSS",
                "",
                "to table shown",
            )
        )
        if cl.get("cold"):
            rows.append(
                ("  tokwatch cold / claude-monitor", f"{cl['cold']['seconds'] / cm['seconds']:.2f}x", "", "")
            )
    lv = f.get("live", {})
    if lv.get("p50_ms") is not None:
        rows.append(
            (
                "live latency (write -> turn event)",
                f"p50 {lv['p50_ms']:.0f} / p95 {lv['p95_ms']:.0f} / max {lv['max_ms']:.0f} ms",
                f"p50 <= {TARGETS['live_p50_ms']:.0f} ms",
                status(lv["p50_ms"], TARGETS["live_p50_ms"]),
            )
        )
    if lv.get("idle_cpu_pct") is not None:
        rows.append(
            (
                f"idle CPU of watch ({lv['idle_seconds']:.0f} s)",
                f"{lv['idle_cpu_pct']:.2f}% of a core",
                f"<= {TARGETS['idle_cpu_pct']}%",
                status(lv["idle_cpu_pct"], TARGETS["idle_cpu_pct"]),
            )
        )
    if lv.get("startup_to_ready_s") is not None:
        rows.append(("watch start -> ready (small dir)", f"{lv['startup_to_ready_s']:.2f} s", "", ""))
    if f.get("mcp"):
        from mcp_bench import render as render_mcp

        rows.extend(render_mcp(f["mcp"]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    head = ("measure", "value", "target", "status / check")
    widths = [max(wd, len(h)) for wd, h in zip(widths, head, strict=True)]
    lines.append("  ".join(h.ljust(wd) for h, wd in zip(head, widths, strict=True)))
    lines.append("  ".join("-" * wd for wd in widths))
    for r in rows:
        lines.append("  ".join(x.ljust(wd) for x, wd in zip(r, widths, strict=True)).rstrip())
    bad = {k: v for k, v in res.checks.items() if v != "OK"}
    lines.append("")
    lines.append(
        "correctness vs MANIFEST.json: "
        + ("all OK" if not bad else "; ".join(f"{k}: {v}" for k, v in bad.items()))
    )
    if cc.get("all", {}).get("totals"):
        lines.append("")
        lines.append("what ccusage reports (tokens) vs MANIFEST.json:")
        man = res.corpus["manifest_agents"]
        for a, t in sorted(cc["all"]["totals"].items()):
            want = man.get(a, {})
            diffs = [
                f"{k} {t.get(k, 0)} vs {want.get(k)}"
                for k in ("input", "cache_read", "cache_write", "output")
                if want and t.get(k, 0) != want.get(k)
            ]
            lines.append(f"  {a:7s} " + ("same totals" if not diffs else "differs: " + ", ".join(diffs)))
    if cm.get("total_tokens") is not None:
        man = res.corpus["manifest_agents"]["claude"]
        want = sum(man[k] for k in ("input", "cache_read", "cache_write", "output"))
        lines.append(
            f"  claude-monitor: total tokens {cm['total_tokens']} vs {want}, entries "
            f"{cm.get('entries')} vs {man['turns']} turns"
        )
    for n in res.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="tokwatch benchmark")
    p.add_argument("--size-mb", type=float, default=260)
    p.add_argument("--corpus", type=Path, help="corpus folder (default bench/corpus/<size>mb)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--skip-others", action="store_true", help="do not install or run ccusage / claude-monitor"
    )
    p.add_argument("--skip-live", action="store_true")
    p.add_argument("--skip-dashboard", action="store_true", help="do not measure the dashboard in tmux")
    p.add_argument("--only-dashboard", action="store_true", help="measure the dashboard only")
    p.add_argument("--dashboard-repeat", type=int, default=3, help="dashboard launches per kind")
    p.add_argument("--skip-mcp", action="store_true", help="do not time `tokwatch mcp`")
    p.add_argument("--repeat", type=int, default=5, help="runs per export measurement (median reported)")
    p.add_argument("--live-n", type=int, default=25)
    p.add_argument("--idle-seconds", type=float, default=10.0)
    p.add_argument("--profile", action="store_true", help="also cProfile one cold export (top functions)")
    p.add_argument("--tokwatch", help="command to run tokwatch (default: the venv's tokwatch)")
    p.add_argument(
        "--json", type=Path, help="where to save results (default bench/out/results-<size>mb.json)"
    )
    args = p.parse_args(argv)

    size_tag = f"{args.size_mb:g}mb"
    corpus: Path = (args.corpus or BENCH / "corpus" / size_tag).resolve()
    res = Results(machine=machine_info())
    res.machine["git"] = git_info()
    res.machine["loadavg_start"] = os.getloadavg()[0]
    m = res.machine
    print(f"machine: nproc={m['nproc']}  cpu={m['cpu']}  mem={m['memory']}  python={m['python']}", flush=True)
    manifest = ensure_corpus(corpus, args.size_mb, args.seed)
    ag = manifest["agents"]
    res.corpus = {
        "path": str(corpus),
        "bytes": manifest["all"]["bytes"],
        "files": manifest["all"]["files"],
        "turns": manifest["all"]["turns"],
        "seed": manifest["seed"],
        "claude_mb": ag["claude"]["bytes"] / MB,
        "codex_mb": ag["codex"]["bytes"] / MB,
        "gemini_mb": ag["gemini"]["bytes"] / MB,
        "manifest_agents": ag,
    }
    print(f"# warming the page cache ({warm_page_cache(corpus) / MB:.0f} MB read)", flush=True)
    tw = tokwatch_cmd(args.tokwatch)
    # as after `pip install`: bytecode compiled (a dev shell may set PYTHONDONTWRITEBYTECODE)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(BENCH.parent / "tokwatch")], check=False)
    with tempfile.TemporaryDirectory(prefix="tokwatch-bench-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        has_no_cache = "--no-cache" in export_help(tw, clean_env(work / "home"))
        agents = ("claude", "codex", "gemini")
        if not args.skip_dashboard:
            print("# the dashboard in tmux (100x30): first paint, every session listed", flush=True)
            res.figures["dashboard"] = bench_dashboard(tw, corpus, work, args.dashboard_repeat, res)
        if args.only_dashboard:
            args.skip_live = True
        else:
            res.figures["startup"] = bench_startup(tw, work, args.repeat)
            print("# tokwatch export: whole corpus", flush=True)
            res.figures["export_all"] = bench_export(
                tw, corpus, agents, manifest, work, args.repeat, has_no_cache, res, "all"
            )
            print("# tokwatch export: Claude part", flush=True)
            res.figures["export_claude"] = bench_export(
                tw, corpus / "claude", ("claude",), manifest, work, args.repeat, False, res, "claude"
            )
        if not args.skip_live:
            print(
                f"# live latency ({args.live_n} appends) and idle CPU ({args.idle_seconds:g} s)", flush=True
            )
            res.figures["live"] = bench_live(tw, work, args.live_n, args.idle_seconds, res)
        if not args.skip_mcp:
            from mcp_bench import bench_mcp

            print("# tokwatch mcp: first and tenth call of each tool, warm", flush=True)
            res.figures["mcp"] = bench_mcp(tw, corpus, work, args.repeat)
        if not args.skip_others:
            exe = ensure_ccusage(res)
            if exe:
                print("# ccusage", flush=True)
                res.others["ccusage"] = bench_ccusage(exe, corpus, work, args.repeat)
            cm = ensure_claude_monitor(res)
            if cm:
                print("# claude-monitor", flush=True)
                res.others["claude_monitor"] = bench_claude_monitor(cm, corpus, work, min(args.repeat, 2))
        if args.profile:
            print("# cProfile of a cold export", flush=True)
            res.figures["profile"] = profile_export(corpus, work)
    res.machine["loadavg_end"] = os.getloadavg()[0]
    print()
    print(render(res))
    if args.profile:
        print()
        print(res.figures["profile"])
    dest = args.json or BENCH / "out" / f"results-{size_tag}.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(asdict(res), indent=2, default=str) + "\n")
    print(f"\nresults saved to {dest}")
    bad = [v for v in res.checks.values() if v != "OK"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
