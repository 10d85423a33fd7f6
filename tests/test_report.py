"""`tokwatch report`: rows add up to the export, days follow the zone, blocks follow Claude's rules."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from rich.cells import cell_len
from rich.console import Console

from tokwatch.cli import main
from tokwatch.cli import report as cli_report
from tokwatch.core import blocks as blk
from tokwatch.core import text
from tokwatch.core.models import Tokens
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.output import report_render
from tokwatch.output.export import rows as export_rows
from tokwatch.reports import report
from tokwatch.reports.report import Filters, build

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"
REAL = Path(__file__).resolve().parent / "fixtures" / "real"
TOKEN_KEYS = ("turns", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
TOKEN_KEYS += ("reasoning_tokens", "total_tokens")
ZONES = ("UTC", "America/Los_Angeles", "Asia/Kolkata")


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def claude_line(
    mid: str,
    when: str | None,
    *,
    session: str = "s1",
    cwd: str = "/work/app",
    model: str = "claude-sonnet-4-5-20250929",
    inp: int = 10,
    out: int = 100,
    cache_read: int = 1000,
    cache_write: int = 50,
    sidechain: bool = False,
) -> bytes:
    d: dict[str, object] = {
        "type": "assistant",
        "sessionId": session,
        "cwd": cwd,
        "isSidechain": sidechain,
        "requestId": f"req_{mid}",
        "message": {
            "id": mid,
            "model": model,
            "usage": {
                "input_tokens": inp,
                "output_tokens": out,
                "cache_read_input_tokens": cache_read,
                "cache_creation_input_tokens": cache_write,
            },
        },
    }
    if when is not None:
        d["timestamp"] = when
    return orjson.dumps(d) + b"\n"


def write_claude(root: Path, session: str, lines: list[bytes], project: str = "-work-app") -> Path:
    p = root / "projects" / project / f"{session}.jsonl"
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "ab") as f:
        f.write(b"".join(lines))
    return p


def load(*paths: Path) -> Store:
    store = Store(make_pricer())
    Engine(store, list(paths)).backfill()
    return store


def export_totals(store: Store) -> dict[str, object]:
    rows = [r.model_dump() for r in export_rows(store)]
    return {k: sum(r[k] for r in rows) for k in TOKEN_KEYS}


# ---------------------------------------------------------------- rows sum to the export
@pytest.fixture(scope="module")
def everything() -> Store:
    return load(SAMPLES, REAL)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("view", report.VIEWS)
def test_rows_sum_exactly_to_the_export(everything: Store, view: str, zone: str) -> None:
    rep = build(everything, view, Filters(tz=report.parse_tz(zone)), now=ts("2026-11-21T15:00:00Z"))
    doc = json.loads(report_render.to_json(rep, breakdown=True))
    want = export_totals(everything)
    assert want["turns"]
    summed = {k: sum(r[k] for r in doc["rows"]) for k in TOKEN_KEYS}
    assert summed == want
    assert {k: doc["totals"][k] for k in TOKEN_KEYS} == want
    # money in integer picodollars: exact
    store_total = everything.totals()
    assert sum(r.tokens.cost_pico for r in rep.rows) == store_total.cost_pico
    assert rep.totals.cost_pico == store_total.cost_pico
    assert doc["totals"]["cost_usd"] == round(store_total.cost_pico / 1e12, 9)
    export_cost = sum(r.cost_usd or 0 for r in export_rows(everything))
    assert sum(r["cost_usd"] for r in doc["rows"]) == pytest.approx(export_cost, abs=1e-6)
    for r in doc["rows"]:  # per-model rows add up to their row
        for k in TOKEN_KEYS:
            assert sum(b[k] for b in r["breakdown"]) == r[k]


@pytest.mark.parametrize("view", report.VIEWS)
def test_csv_rows_sum_to_the_export(everything: Store, view: str) -> None:
    rep = build(everything, view, Filters(tz=UTC), now=ts("2026-11-21T15:00:00Z"))
    want = export_totals(everything)
    for breakdown in (False, True):
        rows = list(csv.DictReader(io.StringIO(report_render.to_csv(rep, breakdown))))
        assert {k: sum(int(r[k]) for r in rows) for k in TOKEN_KEYS} == want


def test_undated_and_unpriced_turns_still_add_up(tmp_path: Path) -> None:
    write_claude(
        tmp_path,
        "s1",
        [
            claude_line("m1", "2026-03-10T10:00:00.000Z"),
            claude_line("m2", None),  # no timestamp in the log
            claude_line("m3", "2026-03-10T11:00:00.000Z", model="my-private-model"),
        ],
    )
    store = load(tmp_path)
    want = export_totals(store)
    for view in report.VIEWS:
        rep = build(store, view, Filters(tz=UTC), now=ts("2026-03-20T00:00:00Z"))
        doc = json.loads(report_render.to_json(rep))
        assert {k: sum(r[k] for r in doc["rows"]) for k in TOKEN_KEYS} == want, view
        assert doc["totals"]["cost_usd"] is None  # one turn has no price: never a fake total
        assert doc["totals"]["unpriced_turns"] == 1
        assert doc["totals"]["known_cost_usd"] > 0  # the known part, a lower bound
    daily = json.loads(report_render.to_json(build(store, "daily", Filters(tz=UTC))))["rows"]
    assert [r["date"] for r in daily] == ["2026-03-10", "unknown"]
    assert daily[0]["cost_usd"] is None and daily[1]["cost_usd"] is not None
    blocks = json.loads(report_render.to_json(build(store, "blocks", Filters(tz=UTC))))["rows"]
    assert blocks[-1]["start"] is None and blocks[-1]["turns"] == 1


# ---------------------------------------------------------------- days, weeks, months, zones
@pytest.fixture
def midnight_logs(tmp_path: Path) -> Store:
    # 23:30Z and 00:30Z straddle midnight in UTC; 07:30Z is 00:30 in Los Angeles (UTC-7 in March).
    write_claude(
        tmp_path,
        "s1",
        [
            claude_line("a", "2026-03-10T23:30:00.000Z", out=1),
            claude_line("b", "2026-03-11T00:30:00.000Z", out=10),
            claude_line("c", "2026-03-11T07:30:00.000Z", out=100),
        ],
    )
    return load(tmp_path)


def _days(store: Store, zone: str, **kw: object) -> dict[str, int]:
    rep = build(store, "daily", Filters(tz=report.parse_tz(zone), **kw))  # type: ignore[arg-type]
    return {r.key["date"]: r.tokens.output for r in rep.rows}


def test_days_follow_the_time_zone(midnight_logs: Store) -> None:
    assert _days(midnight_logs, "UTC") == {"2026-03-10": 1, "2026-03-11": 110}
    assert _days(midnight_logs, "America/Los_Angeles") == {"2026-03-10": 11, "2026-03-11": 100}
    assert _days(midnight_logs, "Asia/Tokyo") == {"2026-03-11": 111}


def test_since_and_until_are_inclusive_days_in_the_zone(midnight_logs: Store) -> None:
    la = "America/Los_Angeles"
    assert _days(midnight_logs, la, since=date(2026, 3, 11)) == {"2026-03-11": 100}
    assert _days(midnight_logs, la, until=date(2026, 3, 10)) == {"2026-03-10": 11}
    assert _days(midnight_logs, "UTC", since=date(2026, 3, 11), until=date(2026, 3, 11)) == {
        "2026-03-11": 110
    }


def test_dst_day_in_a_zone() -> None:
    # 2026-03-08 is 23 hours long in Los Angeles: 07:59Z is still the 7th, 08:00Z the 8th at 00:00.
    la = ZoneInfo("America/Los_Angeles")
    assert report.local_date(ts("2026-03-08T07:59:00Z"), la) == date(2026, 3, 7)
    assert report.local_date(ts("2026-03-08T08:00:00Z"), la) == date(2026, 3, 8)
    assert report.local_date(ts("2026-03-09T06:59:00Z"), la) == date(2026, 3, 8)
    assert report.local_date(ts("2026-03-09T07:00:00Z"), la) == date(2026, 3, 9)


def test_iso_weeks_and_months() -> None:
    assert report.week_key(date(2026, 11, 22)) == "2026-W47"  # a Sunday ends the week
    assert report.week_key(date(2026, 11, 23)) == "2026-W48"  # Monday starts the next
    assert report.week_key(date(2027, 1, 1)) == "2026-W53"  # the ISO year, not the calendar year
    assert report.week_key(date(2025, 12, 29)) == "2026-W01"
    assert report.month_key(date(2026, 2, 9)) == "2026-02"


def test_weekly_and_monthly_group_days(midnight_logs: Store) -> None:
    weeks = build(midnight_logs, "weekly", Filters(tz=UTC)).rows
    assert [(r.key["week"], r.tokens.turns) for r in weeks] == [("2026-W11", 3)]
    months = build(midnight_logs, "monthly", Filters(tz=UTC)).rows
    assert [(r.key["month"], r.tokens.turns) for r in months] == [("2026-03", 3)]


def test_parse_dates_and_zones() -> None:
    assert cli_report.parse_date("20260311") == date(2026, 3, 11)
    assert cli_report.parse_date("2026-03-11") == date(2026, 3, 11)
    with pytest.raises(Exception, match="not a date"):
        cli_report.parse_date("11/03/2026")
    assert report.parse_tz(None) is None and report.parse_tz("local") is None
    assert report.parse_tz("utc") is UTC
    with pytest.raises(ValueError, match="unknown time zone"):
        report.parse_tz("Mars/Olympus")


# ---------------------------------------------------------------- blocks
def _starts(*times: str) -> list[str]:
    out = blk.block_starts([ts(t) for t in times])
    return [datetime.fromtimestamp(s, UTC).strftime("%H:%M") for s in out]


def test_block_starts_at_the_first_turn_floored_to_the_hour() -> None:
    assert _starts("2026-03-10T09:47:12Z", "2026-03-10T10:15:00Z") == ["09:00"]


def test_block_is_cut_after_five_hours_even_without_a_gap() -> None:
    # 09:10 opens 09:00-14:00; 13:59 is inside; 14:00 (one minute later) opens the next block.
    assert _starts("2026-03-10T09:10:00Z", "2026-03-10T13:59:00Z", "2026-03-10T14:00:00Z") == [
        "09:00",
        "14:00",
    ]
    # a turn every 50 minutes: a new block every 5 hours, each floored to its first turn's hour
    times = [
        datetime.fromtimestamp(ts("2026-03-10T09:30:00Z") + i * 3000, UTC).isoformat() for i in range(13)
    ]
    assert _starts(*times) == ["09:00", "14:00", "19:00"]


def test_a_gap_of_five_hours_starts_a_new_block() -> None:
    assert _starts("2026-03-10T09:10:00Z", "2026-03-10T16:30:00Z") == ["09:00", "16:00"]
    # the next turn floors to its own hour, not to the previous block's end
    assert _starts("2026-03-10T09:10:00Z", "2026-03-10T14:20:00Z") == ["09:00", "14:00"]
    assert _starts("2026-03-10T09:10:00Z", "2026-03-10T15:20:00Z") == ["09:00", "15:00"]


def test_anchor_finds_a_turn_that_must_start_a_block() -> None:
    times = [ts(t) for t in ("2026-03-10T01:00:00Z", "2026-03-10T02:00:00Z", "2026-03-10T09:00:00Z")]
    assert blk.anchor(times, complete_from=-float("inf")) == 0
    # only complete from 00:00: 01:00 might have had a turn at 21:00 the day before
    assert blk.anchor(times, complete_from=ts("2026-03-10T00:00:00Z")) == 2
    assert blk.anchor(times[:2], complete_from=ts("2026-03-10T00:00:00Z")) is None


def test_blocks_report_with_the_active_block_and_limits(tmp_path: Path) -> None:
    write_claude(
        tmp_path,
        "s1",
        [
            claude_line("a", "2026-03-10T02:10:00.000Z", inp=1000, out=0, cache_read=0, cache_write=0),
            claude_line("b", "2026-03-10T09:10:00.000Z", inp=600, out=0, cache_read=0, cache_write=0),
            claude_line("c", "2026-03-10T10:10:00.000Z", inp=600, out=0, cache_read=0, cache_write=0),
        ],
    )
    store = load(tmp_path)
    now = ts("2026-03-10T11:10:00Z")
    rep = build(store, "blocks", Filters(tz=UTC), now=now, token_limit="max")
    doc = json.loads(report_render.to_json(rep))
    first, active = doc["rows"]
    assert (first["start"], first["end"]) == ("2026-03-10T02:00:00.000Z", "2026-03-10T07:00:00.000Z")
    assert not first["active"] and first["limit_percent"] == 100.0
    assert active["active"] and active["start"] == "2026-03-10T09:00:00.000Z"
    assert active["remaining_minutes"] == 170.0  # 11:10 now, ends at 14:00
    assert active["total_tokens"] == 1200 and active["limit_percent"] == 120.0
    assert active["burn_rate_tokens_per_minute"] == 10.0  # 1200 tokens since 09:10, 120 minutes
    assert active["projected_tokens"] == 1200 + 10 * 170
    assert active["projected_limit_percent"] == 290.0
    assert active["projected_cost_usd"] == pytest.approx(active["cost_usd"] * 2900 / 1200, rel=1e-6)
    rep = build(store, "blocks", Filters(tz=UTC), now=now, token_limit=2000)
    assert [r.extra["limit_percent"] for r in rep.rows] == [50.0, 60.0]


def test_project_filter_keeps_block_boundaries_from_all_turns(tmp_path: Path) -> None:
    write_claude(
        tmp_path,
        "a",
        [claude_line("a1", "2026-03-10T09:10:00.000Z", session="a", cwd="/x/alpha")],
        "-x-alpha",
    )
    write_claude(
        tmp_path, "b", [claude_line("b1", "2026-03-10T13:30:00.000Z", session="b", cwd="/x/Beta")], "-x-Beta"
    )
    store = load(tmp_path)
    rep = build(store, "blocks", Filters(tz=UTC, project="beta"), now=ts("2026-04-01T00:00:00Z"))
    assert [(r.key["start"], r.tokens.turns) for r in rep.rows] == [("2026-03-10T09:00:00.000Z", 1)]
    # an agent filter does move boundaries: it picks the turns the blocks are made of
    rep = build(store, "blocks", Filters(tz=UTC, agents=frozenset({"codex"})))
    assert rep.rows == []


def test_agent_and_project_filters(everything: Store) -> None:
    rep = build(everything, "session", Filters(agents=frozenset({"claude"}), project="WEBSHOP"))
    assert {(r.key["agent"], r.key["project"]) for r in rep.rows} == {
        ("claude", "/home/dev/projects/webshop")
    }


# ---------------------------------------------------------------- tables and CSV
@pytest.mark.parametrize("width", [60, 80, 100, 160])
@pytest.mark.parametrize("view", report.VIEWS)
def test_table_fits_the_terminal(everything: Store, view: str, width: int) -> None:
    rep = build(
        everything,
        view,
        Filters(tz=UTC),
        now=ts("2026-11-21T15:00:00Z"),
        token_limit="max" if view == "blocks" else None,
    )
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None)
    report_render.print_table(rep, console, breakdown=True)
    out = buf.getvalue()
    assert max(cell_len(line) for line in out.splitlines()) <= width
    assert "Total" in out


def test_table_prints_log_text_literally(tmp_path: Path) -> None:
    write_claude(
        tmp_path, "s1", [claude_line("m", "2026-03-10T10:00:00.000Z", cwd="/p/[bold red]x[/]")], "-p"
    )
    rep = build(load(tmp_path), "session", Filters(tz=UTC))
    buf = io.StringIO()
    report_render.print_table(rep, Console(file=buf, width=200, color_system=None))
    assert "/p/[bold red]x[/]" in buf.getvalue()


def test_csv_guards_formula_cells(tmp_path: Path) -> None:
    write_claude(tmp_path, "s1", [claude_line("m", "2026-03-10T10:00:00.000Z", cwd="=HYPERLINK(1)")], "-p")
    rows = list(
        csv.DictReader(io.StringIO(report_render.to_csv(build(load(tmp_path), "session", Filters()))))
    )
    assert rows[0]["project"] == "'=HYPERLINK(1)"


def test_unknown_cost_shows_unknown_or_a_lower_bound() -> None:
    assert text.cost_text(Tokens(turns=2, unpriced_turns=2)) == "unknown"
    assert text.cost_text(Tokens(turns=2, unpriced_turns=1, cost_pico=1_500_000_000_000)) == "≥$1.50"
    assert text.cost_text(Tokens(turns=1, cost_pico=0)) == "$0.00"


# ---------------------------------------------------------------- command line
def test_cli_report_json_and_errors(
    midnight_logs: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKWATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOKWATCH_CONFIG", str(tmp_path / "none.toml"))
    assert (
        main(
            ["report", "daily", str(tmp_path), "--json", "--tz", "America/Los_Angeles", "--since", "20260311"]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert [r["date"] for r in doc["rows"]] == ["2026-03-11"] and doc["totals"]["output_tokens"] == 100
    assert main(["report", "daily", str(tmp_path), "--tz", "Nowhere/Atlantis"]) == 2
    assert main(["report", "daily", str(tmp_path), "--token-limit", "max"]) == 2
    assert main(["report", "weekly", str(tmp_path), "--csv", "--breakdown"]) == 0
    assert capsys.readouterr().out.startswith("week,model,turns,")
    monkeypatch.setenv("COLUMNS", "90")
    assert main(["report", "blocks", str(tmp_path), "--tz", "UTC"]) == 0
    assert "Usage per 5-hour block (UTC)" in capsys.readouterr().out


# ---------------------------------------------------------------- tables as people read them (issue 11)
LONG_CWD = "/home/dev/work/clients/acme-corporation/services/billing-gateway"


@pytest.fixture
def two_years(tmp_path: Path) -> Path:
    """Two sessions a year apart in a long project path; cache reads dominate, as they do."""
    write_claude(
        tmp_path, "s1", [claude_line("m1", "2025-12-30T10:00:00.000Z", cwd=LONG_CWD, cache_read=900_000)]
    )
    write_claude(
        tmp_path, "s2", [claude_line("m2", "2026-01-02T10:00:00.000Z", session="s2", cache_read=800_000)]
    )
    return tmp_path


def _table(store: Store, view: str, width: int) -> str:
    rep = build(store, view, Filters(tz=UTC))
    buf = io.StringIO()
    report_render.print_table(rep, Console(file=buf, width=width, color_system=None))
    return buf.getvalue()


@pytest.mark.parametrize("width", [50, 60, 80])
def test_the_largest_token_kind_is_never_dropped(two_years: Path, width: int) -> None:
    out = _table(load(two_years), "daily", width)
    assert "Cache read" in out and "1,700,000" in out  # (it used to go second, after Models)
    assert max(cell_len(line) for line in out.splitlines()) <= width


def test_paths_are_not_wrapped_when_there_is_room(two_years: Path) -> None:
    out = _table(load(two_years), "session", 220)
    assert LONG_CWD in out  # one piece (it used to fold at 32 characters)


def test_dates_carry_the_year_when_the_report_spans_two(two_years: Path) -> None:
    out = _table(load(two_years), "session", 220)
    assert "2025-12-30 10:00" in out and "2026-01-02 10:00" in out


def test_not_a_terminal_gets_the_whole_table(
    two_years: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TOKWATCH_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["report", "session", str(two_years), "--tz", "UTC"]) == 0
    out = capsys.readouterr().out
    for header in ("Agent", "Project", "Last turn", "Models", "Input", "Output", "Cache write", "Cache read"):
        assert header in out, header
    assert LONG_CWD in out
    monkeypatch.setenv("COLUMNS", "70")  # COLUMNS still applies
    assert main(["report", "session", str(two_years), "--tz", "UTC"]) == 0
    narrow = capsys.readouterr().out
    assert max(cell_len(line) for line in narrow.splitlines()) <= 70
    assert "Cache read" in narrow and "Agent" not in narrow
