"""`tokwatch status --json`, `tokwatch statusline`, budgets and the "today / this block" numbers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path

import orjson
import pytest
from test_report import claude_line, load, ts, write_claude

from tokwatch.cli import main
from tokwatch.config import Config, ConfigError, load_config
from tokwatch.core.models import Tokens
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.output import statusline
from tokwatch.reports import report
from tokwatch.reports.budgets import Budget, BudgetAlarm, BudgetsConfig, BudgetState, current_usage, evaluate
from tokwatch.reports.report import Filters, build

TESTS = Path(__file__).resolve().parent
SAMPLES = TESTS.parent / "sample_logs"
REAL_CLAUDE = TESTS / "fixtures" / "real" / "claude"
REAL_TRANSCRIPT = (
    REAL_CLAUDE
    / "projects"
    / "-home-USER-projects-spotter-worktrees-spotter-dov"
    / "4d5611e5-241a-462a-8d15-5122611a9569.jsonl"
)
NEW = TESTS / "fixtures" / "report" / "claude"
NEW_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
GATEWAY = "c4187de6-0fb0-4b26-8d75-6acd9d771ac8"
USAGE_KEYS = ["turns", "input", "output", "cacheRead", "cacheWrite", "totalTokens", "cost"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKWATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOKWATCH_CONFIG", str(tmp_path / "config.toml"))


def run_status(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main(["status", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# ---------------------------------------------------------------- status --json
def test_status_json_shape_and_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_status(capsys, str(REAL_CLAUDE))
    assert list(doc) == ["session", "usage"]
    assert doc["session"] == {
        "id": "4d5611e5-241a-462a-8d15-5122611a9569",
        "agent": "claude",
        "project": doc["session"]["project"],  # type: ignore[index]
        "model": "claude-opus-4-6",
    }
    usage = doc["usage"]
    assert isinstance(usage, dict) and list(usage) == [
        "session",
        "lastTurn",
        "context",
        "limits",
        "compaction",
    ]  # no budgets configured
    assert usage["limits"] == {}  # Claude writes no plan windows to its logs (the status line gets them)
    road = usage["compaction"]
    assert (road["threshold"], road["window"], road["count"], road["lastAt"]) == (
        167_000,
        200_000,
        1,
        "2026-02-12T20:30:28.504Z",
    )
    assert list(usage["session"]) == USAGE_KEYS
    assert list(usage["lastTurn"]) == USAGE_KEYS[1:]
    # the reference totals of this excerpt (tests/fixtures/real/SOURCES.md), subagents included
    s = usage["session"]
    assert (s["input"], s["cacheRead"], s["cacheWrite"], s["output"]) == (24, 425605, 147707, 420)
    assert s["totalTokens"] == 535133 + 38623 and s["cost"] > 0
    last = statusline.last_main_turn(REAL_TRANSCRIPT, status_parser(REAL_TRANSCRIPT))
    assert last is not None
    assert usage["context"]["used"] == last.context
    assert usage["context"]["window"] == 200000
    assert usage["context"]["percent"] == round(100 * last.context / 200000, 1)


def status_parser(path: Path):  # type: ignore[no-untyped-def]
    from tokwatch.agents import get_agent

    agent = get_agent("claude")
    assert agent is not None
    return agent.parser(path).feed


def test_status_picks_the_session(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_status(capsys, str(SAMPLES))
    assert doc["session"]["agent"] == "gemini"  # type: ignore[index]  # the latest turn of all
    doc = run_status(capsys, str(SAMPLES), "--cwd", "/home/dev/projects/webshop")
    assert doc["session"]["id"] == "62f746b4-84e6-4ceb-95bd-447e7184d454"  # type: ignore[index]
    doc = run_status(capsys, str(SAMPLES), "--session", "c4187de6")  # a unique prefix will do
    assert doc["session"]["id"] == GATEWAY  # type: ignore[index]
    assert doc["usage"]["session"]["turns"] == 9  # type: ignore[index]
    doc = run_status(capsys, str(SAMPLES), "--session", "does-not-exist")
    assert doc["session"] is None and doc["usage"]["session"]["turns"] == 0  # type: ignore[index]


def test_status_of_a_session_with_no_turns_yet(capsys: pytest.CaptureFixture[str]) -> None:
    want_session = {"id": NEW_ID, "agent": "claude", "project": "/home/USER/projects/newapp", "model": None}
    for args in (["--session", NEW_ID], ["--cwd", "/home/USER/projects/newapp"], []):
        doc = run_status(capsys, str(NEW), *args)
        assert doc["session"] == want_session, args
        usage = doc["usage"]
        assert usage["session"] == dict.fromkeys(USAGE_KEYS, 0) | {"cost": 0.0}  # type: ignore[index]
        assert usage["lastTurn"] is None  # type: ignore[index]
        assert usage["context"] == {"used": 0, "window": 200000, "windowAssumed": False, "percent": 0.0}  # type: ignore[index]
    # a new session of the project wins over the project's older sessions with turns
    doc = run_status(capsys, str(NEW), str(SAMPLES), "--cwd", "/home/USER/projects/newapp")
    assert doc["session"]["id"] == NEW_ID  # type: ignore[index]


def test_status_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", str(SAMPLES), "--session", GATEWAY]) == 0
    out = capsys.readouterr().out
    assert "claude c4187de6" in out and "session:       9 turns, 404,158 tokens, $0.50" in out
    assert "context:       63,900 of 200,000 (32%)" in out


def test_status_with_budgets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.toml").write_text(
        "[budgets]\ndaily = { usd = 10 }\nblock = { tokens = 1_000_000 }\nsession = { usd = 1 }\n"
    )
    write_claude(tmp_path / "logs", "s1", [claude_line("m1", _iso(time.time() - 60), inp=1000, cache_read=0)])
    doc = run_status(capsys, str(tmp_path / "logs"))
    budgets = doc["usage"]["budgets"]  # type: ignore[index]
    assert list(budgets) == ["daily", "block", "session"]
    assert budgets["block"] == {"used": 1150, "limit": 1_000_000, "percent": 0.1, "unit": "tokens"}
    spent = doc["usage"]["session"]["cost"]  # type: ignore[index]
    assert budgets["daily"]["used"] == pytest.approx(spent) and budgets["daily"]["unit"] == "usd"
    assert budgets["session"]["percent"] == round(100 * spent, 1)


def _iso(t: float) -> str:
    from tokwatch.core.models import iso

    return iso(t)


# ---------------------------------------------------------------- budgets
def test_budget_config_validation(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[budgets]\nagents = ["claude"]\ndaily = { usd = 25.5 }\n')
    assert load_config(cfg).budgets.daily == Budget(usd=25.5)
    for bad in (
        "daily = { usd = 1, tokens = 5 }",
        "daily = {}",
        "block = { tokens = 0 }",
        "weekly = { usd = 1 }",
    ):
        cfg.write_text(f"[budgets]\n{bad}\n")
        with pytest.raises(ConfigError):
            load_config(cfg)


def test_budget_states_and_lower_bounds() -> None:
    t = Tokens(turns=3, input=500, cost_pico=2_000_000_000_000, unpriced_turns=1)
    st = evaluate("daily", Budget(usd=4), t)
    assert (st.used, st.percent, st.lower_bound) == (2.0, 50.0, True)
    assert st.as_json() == {"used": 2.0, "limit": 4.0, "percent": 50.0, "unit": "usd", "lowerBound": True}
    assert st.text() == "50% (≥$2.00 of $4.00)"
    assert evaluate("block", Budget(tokens=1000), t).text() == "50% (500 of 1,000 tokens)"


def test_alarm_says_each_crossing_once() -> None:
    alarm = BudgetAlarm()

    def state(pct: float) -> BudgetState:
        return BudgetState("daily", "usd", pct, 100.0, False)

    assert alarm.check({"daily": ("2026-03-10", state(50))}) == []
    [c] = alarm.check({"daily": ("2026-03-10", state(81))})
    assert c.threshold == 80 and c.message() == "Daily budget at 80%: 81% ($81.00 of $100.00)"
    assert alarm.check({"daily": ("2026-03-10", state(95))}) == []
    [c] = alarm.check({"daily": ("2026-03-10", state(100))})
    assert c.threshold == 100 and c.message().startswith("Daily budget exceeded")
    assert alarm.check({"daily": ("2026-03-10", state(150))}) == []
    # a new day is a new period; a jump past both thresholds is said once, as the higher one
    [c] = alarm.check({"daily": ("2026-03-11", state(120))})
    assert c.threshold == 100
    assert alarm.check({"daily": ("2026-03-11", state(85))}) == []


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles", "Asia/Kolkata"])
@pytest.mark.parametrize(
    "when, in_block",
    [
        ("2026-11-21T15:00:00Z", True),
        ("2026-11-21T10:30:00Z", True),
        ("2026-11-22T16:30:00Z", True),
        ("2026-11-20T23:30:00Z", False),  # late evening: tomorrow's turns are not today's
        ("2026-11-21T23:59:59Z", False),
    ],
)
def test_current_usage_agrees_with_the_reports(zone: str, when: str, in_block: bool) -> None:
    store = load(SAMPLES)
    now, tz = ts(when), report.parse_tz(zone)
    u = current_usage(store, now, tz)
    days = {r.key["date"]: r.tokens for r in build(store, "daily", Filters(tz=tz)).rows}
    assert u.day == report.local_date(now, tz).isoformat()
    assert u.today == days.get(u.day, Tokens())
    active = build(store, "blocks", Filters(tz=tz), now=now).active
    assert (u.block is not None) is (active is not None) is in_block
    if u.block is not None and active is not None:
        assert u.block.tokens == active.tokens and u.block.start == active.start


# ---------------------------------------------------------------- statusline
def hook(transcript: Path | None, **extra: object) -> dict[str, object]:
    d: dict[str, object] = {
        "session_id": transcript.stem if transcript else "x",
        "transcript_path": str(transcript) if transcript else "",
        "cwd": "/home/dev/projects/api-gateway",
        "model": {"id": "claude-sonnet-4-5-20250929", "display_name": "Sonnet 4.5"},
        "workspace": {
            "current_dir": "/home/dev/projects/api-gateway",
            "project_dir": "/home/dev/projects/api-gateway",
        },
        "cost": {"total_cost_usd": 12.5},
    }
    d.update(extra)
    return d


@pytest.fixture
def claude_home(tmp_path: Path) -> Path:
    root = tmp_path / "claude"
    shutil.copytree(SAMPLES / "claude", root)
    shutil.copytree(NEW, root, dirs_exist_ok=True)
    return root


def gateway(root: Path) -> Path:
    return root / "projects" / "-home-dev-projects-api-gateway" / f"{GATEWAY}.jsonl"


def test_statusline_on_the_sample_logs(claude_home: Path, tmp_path: Path) -> None:
    now = ts("2026-11-21T15:46:00Z")
    d = statusline.statusline_data(
        hook(gateway(claude_home)), Config(), [claude_home], now, UTC, tmp_path / "c"
    )
    assert (
        statusline.render_line(d)
        == "Sonnet 4.5 │ ctx 32% │ session $0.50 │ today $1.03 │ block $0.50 (3h14m left)"
    )
    # the same numbers as the reports over Claude's logs
    store = load(claude_home)
    claude = Filters(tz=UTC, agents=frozenset({"claude"}))
    [today] = [r for r in build(store, "daily", claude).rows if r.key["date"] == "2026-11-21"]
    assert d.usage is not None and d.usage.today == today.tokens
    active = build(store, "blocks", claude, now=now).active
    assert active is not None and d.usage.block is not None and d.usage.block.tokens == active.tokens
    # warm: same answer from the ledger
    again = statusline.statusline_data(
        hook(gateway(claude_home)), Config(), [claude_home], now, UTC, tmp_path / "c"
    )
    assert statusline.render_line(again) == statusline.render_line(d)
    assert (tmp_path / "c" / "ledger.db").exists()


def test_statusline_reads_only_the_logs_of_its_window(claude_home: Path, tmp_path: Path) -> None:
    """The status line never reads all history: a log last written long ago is not even opened."""
    from tokwatch.core.ledger import Ledger

    now = ts("2026-11-21T15:46:00Z")
    old = claude_home / "projects" / "-home-dev-old" / "old-session.jsonl"
    old.parent.mkdir(parents=True)
    old.write_bytes(claude_line("msg_old", "2025-01-01T00:00:00Z", session="old-session") + b"\n")
    os.utime(old, (ts("2025-01-01T00:00:00Z"), ts("2025-01-01T00:00:00Z")))
    first = statusline.render_line(
        statusline.statusline_data(
            hook(gateway(claude_home)), Config(), [claude_home], now, UTC, tmp_path / "c"
        )
    )
    records, _ = Ledger.at(tmp_path / "c").file_records()
    assert records and str(old) not in records
    again = statusline.statusline_data(
        hook(gateway(claude_home)), Config(), [claude_home], now, UTC, tmp_path / "c"
    )
    assert statusline.render_line(again) == first


def test_statusline_with_budgets_and_a_window_from_claude_code(claude_home: Path) -> None:
    cfg = Config(
        budgets=BudgetsConfig(daily=Budget(usd=2), block=Budget(tokens=1_000_000), session=Budget(usd=1))
    )
    h = hook(gateway(claude_home), context_window={"context_window_size": 1_000_000, "total_input_tokens": 9})
    d = statusline.statusline_data(h, cfg, [claude_home], ts("2026-11-21T15:46:00Z"), UTC, None)
    assert statusline.render_line(d) == (
        "Sonnet 4.5 │ ctx 6% │ session $0.50 (50%) │ today $1.03 (51%) │ block $0.50 (40%, 3h14m left)"
    )


def test_statusline_for_a_session_with_no_turns_yet(claude_home: Path) -> None:
    fresh = claude_home / "projects" / "-home-USER-projects-newapp" / f"{NEW_ID}.jsonl"
    h = hook(fresh, model={"id": "claude-opus-4-6", "display_name": "Opus 4.6"})
    d = statusline.statusline_data(h, Config(), [claude_home], ts("2026-11-21T14:41:00Z"), UTC, None)
    assert statusline.render_line(d) == "Opus 4.6 │ session $0.00 │ today $1.03 │ block $0.50 (4h19m left)"


def test_statusline_without_hook_input_or_logs(tmp_path: Path) -> None:
    d = statusline.statusline_data({}, Config(), [tmp_path / "nothing"], time.time(), None, None)
    assert statusline.render_line(d) == "Claude │ today $0.00 │ no block"


def test_statusline_cleans_text_for_one_line(claude_home: Path) -> None:
    h = hook(gateway(claude_home), model={"display_name": "Evil\n\x1b[2Jmodel"})
    d = statusline.statusline_data(h, Config(), [claude_home], ts("2026-11-21T15:46:00Z"), UTC, None)
    line = statusline.render_line(d)
    # visible, not acted on (issue 12): the control characters are shown as escapes
    assert "\n" not in line and "\x1b" not in line and line.startswith("Evil\\n\\x1b[2Jmodel │")


def _statusline(
    stdin: bytes, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tokwatch", "statusline", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_statusline_command_never_fails(claude_home: Path, tmp_path: Path) -> None:
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("budgets = 3\n")
    cases = [
        (b"", ()),
        (b"not json at all \xff", ()),
        (b"[1, 2]", ()),
        (orjson.dumps({"transcript_path": 42, "model": "x", "session_id": None}), ()),
        (orjson.dumps(hook(gateway(claude_home))), ("--config", str(bad_config))),
    ]
    for stdin, extra in cases:
        p = _statusline(stdin, str(claude_home), *extra)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.decode().splitlines()
        assert len(lines) == 1 and lines[0], (stdin, p.stdout)


def test_statusline_command_end_to_end(claude_home: Path, tmp_path: Path) -> None:
    start = time.perf_counter()
    p = _statusline(orjson.dumps(hook(gateway(claude_home))), str(claude_home), "--tz", "UTC")
    elapsed = time.perf_counter() - start
    assert p.returncode == 0
    # history of the sample logs is long over, so no block is running now
    assert re.fullmatch(
        r"Sonnet 4\.5 │ ctx 32% │ session \$0\.50 │ today \$\d+\.\d\d │ no block\n", p.stdout.decode()
    )
    assert elapsed < 5  # generous for CI; measured ~0.25 s on a warm machine (see docs/reports.md)


def test_last_main_turn_reads_back_from_the_end(tmp_path: Path) -> None:
    path = write_claude(
        tmp_path,
        "s1",
        [
            claude_line("main1", "2026-03-10T10:00:00.000Z", inp=7, cache_read=100, cache_write=0),
            claude_line("side", "2026-03-10T10:01:00.000Z", inp=99999, sidechain=True),
            b'{"type":"assistant","isApiErrorMessage":true,"message":{"id":"e","model":"<synthetic>",'
            b'"usage":{"input_tokens":0,"output_tokens":0}},"sessionId":"s1","timestamp":"2026-03-10T10:02:00Z"}\n',
            b'{"type":"user","message":{"content":"' + b"x" * 600_000 + b'"}}\n',  # beyond the first 256 KiB
            b'{"type":"assistant","message":{"id":"torn","usa',  # still being written
        ],
    )
    last = statusline.last_main_turn(path, status_parser(path))
    assert last is not None and last.turn_id == "main1:req_main1" and last.context == 107


def test_block_chain_resumes_from_the_saved_start(tmp_path: Path) -> None:
    """Around-the-clock use (never a 5-hour gap): the first call looks back through all history,
    later ones resume from the block start it saved, reading only recent logs; same answers."""
    root = tmp_path / "claude"
    first = ts("2026-03-01T00:20:00Z")
    for day in range(10):
        lines = [
            claude_line(f"m{day}-{h}", _iso(first + day * 86400 + h * 3 * 3600), session=f"d{day}")
            for h in range(8)
        ]
        p = write_claude(root, f"d{day}", lines)
        last = first + day * 86400 + 7 * 3 * 3600
        os.utime(p, (last, last))
    store = load(root)
    cache = tmp_path / "c"
    for now in (ts("2026-03-10T22:00:00Z"), ts("2026-03-10T22:30:00Z")):
        d = statusline.statusline_data({}, Config(), [root], now, UTC, cache)
        want = build(store, "blocks", Filters(tz=UTC), now=now).active
        assert d.usage is not None and d.usage.block is not None and want is not None
        assert (d.usage.block.start, d.usage.block.tokens) == (want.start, want.tokens)
    from tokwatch.core.ledger import Ledger

    ledger = Ledger.at(cache)
    # saved in the ledger; a state written for other folders is not used
    assert statusline.ChainState(ledger, [root]).load(ts("2026-03-10T23:00:00Z")) == want.start
    assert statusline.ChainState(ledger, [tmp_path / "elsewhere"]).load(ts("2026-03-10T23:00:00Z")) is None


def test_engine_used_by_the_statusline_sees_only_what_it_needs(claude_home: Path, tmp_path: Path) -> None:
    """Only logs modified since the cut-off are read (plus the session's own files)."""
    old = ts("2026-11-01T00:00:00Z")  # everything else was last written three weeks earlier
    for p in claude_home.rglob("*.jsonl"):
        os.utime(p, (old, old))
    last_turn = ts("2026-11-21T14:29:10Z")
    os.utime(gateway(claude_home), (last_turn, last_turn))
    seen: list[list[Path]] = []
    real_init = Engine.__init__

    def spy(self: Engine, store: Store, paths: list[Path] | None = None, **kw: object) -> None:
        seen.append(list(paths or []))
        real_init(self, store, paths, **kw)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Engine, "__init__", spy)
        statusline.statusline_data(
            hook(gateway(claude_home)), Config(), [claude_home], ts("2026-11-21T15:46:00Z"), UTC, None
        )
    assert seen and all(paths == [gateway(claude_home)] for paths in seen)


def test_current_usage_resumes_from_a_known_block_start_and_feeds_the_alarm() -> None:
    """What a live view does after each batch: pass back `last_start`, check budgets once."""
    from tokwatch.reports.budgets import period_keys

    store = load(SAMPLES)
    now = ts("2026-11-21T15:00:00Z")
    first = current_usage(store, now, UTC)
    assert first.last_start == ts("2026-11-21T14:00:00Z")
    again = current_usage(store, now, UTC, chain_from=first.last_start)
    assert (again.today, again.block, again.last_start) == (first.today, first.block, first.last_start)
    cfg = BudgetsConfig(daily=Budget(usd=1), block=Budget(tokens=400_000))
    alarm = BudgetAlarm()
    keys = period_keys(again)
    said = alarm.check({n: (keys[n], st) for n, st in again.states(cfg).items()})
    assert [c.message() for c in said] == [
        "Daily budget exceeded: 126% ($1.26 of $1.00)",
        "Block budget exceeded: 101% (404,158 of 400,000 tokens)",
    ]
    assert alarm.check({n: (keys[n], st) for n, st in again.states(cfg).items()}) == []
