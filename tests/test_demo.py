"""The demo replayer: whole turns per step, valid files at every instant, recent timestamps, clean stop."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tokwatch.demo import DemoReplayer, default_source

SOURCE = default_source()
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")


def _files(root: Path) -> dict[Path, bytes]:
    """The session logs (not Gemini's own project records, `projects.json` and `.project_root`)."""
    return {
        p.relative_to(root): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".jsonl", ".json") and p.name != "projects.json"
    }


def _records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines()]


def _carries_usage(rec: dict[str, Any]) -> bool:
    """Written independently of tokwatch.demo.usage_key: does this record report a billed turn?"""
    msg = rec.get("message")
    if rec.get("type") == "assistant" and isinstance(msg, dict) and "usage" in msg:
        return True
    payload = rec.get("payload") or {}
    if rec.get("type") == "event_msg" and payload.get("type") == "token_count" and payload.get("info"):
        return True
    return rec.get("type") == "gemini" and isinstance(rec.get("tokens"), dict)


def _strip_ts(value: Any) -> Any:
    if isinstance(value, dict):
        # (`resets_at`: Codex's plan windows reset at an epoch second, shifted like the rest)
        return {
            k: "<ts>" if k == "resets_at" else _strip_ts(v) for k, v in value.items() if k != "lastUpdated"
        }
    if isinstance(value, list):
        return [_strip_ts(v) for v in value]
    if isinstance(value, str):
        return TS.sub("<ts>", value)
    return value


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _all_ts(data: bytes) -> list[datetime]:
    return [_ts(m) for m in TS.findall(data.decode())]


def _claude_key(rec: dict[str, Any]) -> tuple[str, str] | None:
    if rec.get("type") == "assistant" and isinstance(rec.get("message"), dict):
        return rec["message"]["id"], rec.get("requestId", "")
    return None


def _codex_key(rec: dict[str, Any]) -> str | None:
    payload = rec.get("payload") or {}
    if payload.get("type") == "token_count" and payload.get("info"):
        return json.dumps(payload["info"]["total_token_usage"], sort_keys=True)
    return None


@pytest.fixture
def replayer(tmp_path: Path) -> DemoReplayer:
    return DemoReplayer(tmp_path / "demo", interval=0.01, loop=False)


def test_default_source_is_the_repo_sample_logs() -> None:
    assert SOURCE.name == "sample_logs"
    for agent in ("claude", "codex", "gemini"):
        assert any((SOURCE / agent).rglob("*.json*")), agent


def test_prepare_creates_agent_roots_with_partial_sessions(replayer: DemoReplayer, tmp_path: Path) -> None:
    roots = replayer.prepare()
    dest = tmp_path / "demo"
    assert roots == [dest / "claude", dest / "codex", dest / "gemini"]
    src_files = _files(SOURCE)
    written = _files(dest)
    assert set(written) == set(src_files)  # same layout, file for file
    for rel, data in written.items():
        src = src_files[rel]
        if rel.suffix == ".jsonl":
            assert data.endswith(b"\n")
            lines, src_lines = data.splitlines(), src.splitlines()
            assert 0 < len(lines) < len(src_lines), rel
            assert 0.35 * len(src_lines) <= len(lines) <= 0.75 * len(src_lines), rel
            recs = _records(data)
            assert any(_carries_usage(r) for r in recs)
            # The history is the start of the sample, untouched apart from timestamps.
            assert _strip_ts(recs) == _strip_ts(_records(src)[: len(recs)])
        else:
            doc, src_doc = json.loads(data), json.loads(src)
            assert 0 < len(doc["messages"]) < len(src_doc["messages"])
            assert doc["sessionId"] == src_doc["sessionId"]


def test_prepare_copies_gemini_project_records(replayer: DemoReplayer, tmp_path: Path) -> None:
    """What Gemini CLI records about its projects comes along, so the demo names them."""
    replayer.prepare()
    dest = tmp_path / "demo"
    for rel in (Path("gemini/projects.json"), Path("gemini/tmp/docs-site/.project_root")):
        assert (dest / rel).read_bytes() == (SOURCE / rel).read_bytes()


def test_history_is_shifted_to_now_keeping_spacing(replayer: DemoReplayer, tmp_path: Path) -> None:
    before = datetime.now(UTC)
    replayer.prepare()
    after = datetime.now(UTC)
    for rel, data in _files(tmp_path / "demo").items():
        stamps = _all_ts(data)
        assert before - timedelta(seconds=1) <= max(stamps) <= after + timedelta(seconds=1), rel
        if rel.suffix == ".json":  # lastUpdated is rewritten: compare the messages' own times
            stamps = _all_ts(json.dumps(json.loads(data)["messages"]).encode())
            src_stamps = _all_ts(json.dumps(json.loads((SOURCE / rel).read_bytes())["messages"]).encode())
        else:
            src_stamps = _all_ts((SOURCE / rel).read_bytes())
        src_stamps = src_stamps[: len(stamps)]
        # one constant shift: every gap between consecutive timestamps is preserved (to the ms)
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        src_gaps = [b - a for a, b in itertools.pairwise(src_stamps)]
        assert all(abs(g - s) <= timedelta(milliseconds=1) for g, s in zip(gaps, src_gaps, strict=True)), rel


def test_each_step_appends_whole_turns_to_one_file(replayer: DemoReplayer, tmp_path: Path) -> None:
    dest = tmp_path / "demo"
    replayer.prepare()
    src_files = _files(SOURCE)
    claude_copies = {
        rel: Counter(filter(None, map(_claude_key, _records(d))))
        for rel, d in src_files.items()
        if "claude" in rel.parts
    }
    codex_copies = {
        rel: Counter(filter(None, map(_codex_key, _records(d))))
        for rel, d in src_files.items()
        if "codex" in rel.parts
    }
    assert any(c for counts in claude_copies.values() for c in counts.values() if c > 1)  # samples do stream
    assert all(set(c.values()) == {2} for c in codex_copies.values())  # and re-emit

    state = _files(dest)
    touched: set[Path] = set()
    steps = 0
    while replayer.step():
        steps += 1
        assert steps < 500
        now = _files(dest)
        changed = [rel for rel in now if now[rel] != state.get(rel)]
        assert len(changed) == 1, changed
        rel = changed[0]
        touched.add(rel)
        new, old = now[rel], state[rel]
        if rel.suffix == ".jsonl":
            assert new.startswith(old) and new.endswith(b"\n")
            added = _records(new[len(old) :])
            assert added and any(_carries_usage(r) for r in added)
            recs = _records(new)
            # streaming duplicates / re-emits are never split across steps
            if rel in claude_copies:
                for key, n in Counter(filter(None, map(_claude_key, recs))).items():
                    assert n == claude_copies[rel][key], key
            if rel in codex_copies:
                assert set(Counter(filter(None, map(_codex_key, recs))).values()) == {2}
        else:
            doc, prev = json.loads(new), json.loads(old)
            assert len(doc["messages"]) == len(prev["messages"]) + 1
            assert doc["lastUpdated"] >= prev["lastUpdated"]
            assert doc["lastUpdated"] == max(m["timestamp"] for m in doc["messages"])
        state = now

    assert touched == set(src_files)  # round-robin reached every file
    assert replayer.step() is False
    # Everything was written: the same records as the samples, only the times differ.
    for rel, data in _files(dest).items():
        if rel.suffix == ".jsonl":
            assert _strip_ts(_records(data)) == _strip_ts(_records(src_files[rel]))
        else:
            assert _strip_ts(json.loads(data)) == _strip_ts(json.loads(src_files[rel]))


def test_appended_turns_are_recent_and_never_go_back_in_time(replayer: DemoReplayer, tmp_path: Path) -> None:
    replayer.prepare()
    start = datetime.now(UTC)
    while replayer.step():
        pass
    main = next((tmp_path / "demo" / "claude" / "projects" / "-home-dev-projects-webshop").glob("*.jsonl"))
    stamps = [_ts(r["timestamp"]) for r in _records(main.read_bytes()) if "timestamp" in r]
    assert stamps == sorted(stamps)
    assert stamps[-1] >= start - timedelta(seconds=1)
    assert stamps[-1] <= datetime.now(UTC) + timedelta(seconds=1)


def test_history_fraction_bounds(tmp_path: Path) -> None:
    full = DemoReplayer(tmp_path / "full", history_fraction=1.0, loop=False)
    full.prepare()
    assert full.step() is False
    for rel, data in _files(tmp_path / "full").items():
        src = (SOURCE / rel).read_bytes()
        if rel.suffix == ".jsonl":
            assert len(data.splitlines()) == len(src.splitlines())
    empty = DemoReplayer(tmp_path / "empty", history_fraction=0.0, loop=False)
    empty.prepare()
    docs = [json.loads(d) for rel, d in _files(tmp_path / "empty").items() if rel.suffix == ".json"]
    assert docs and all(doc["messages"] == [] for doc in docs)
    assert empty.step() is True


def test_run_stops_promptly_and_loops_into_a_new_claude_session(tmp_path: Path) -> None:
    dest = tmp_path / "demo"
    replayer = DemoReplayer(dest, interval=0.01, loop=True)
    replayer.prepare()
    originals = {p.name for p in (dest / "claude").rglob("*.jsonl")}
    stop = threading.Event()
    thread = threading.Thread(target=replayer.run, args=(stop,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    fresh: list[Path] = []
    while time.monotonic() < deadline and not fresh:
        fresh = [
            p for p in (dest / "claude").rglob("*.jsonl") if p.name not in originals and p.stat().st_size
        ]
        time.sleep(0.02)
    t0 = time.monotonic()
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 1.0
    assert fresh, "no new session after the samples ran out"

    new = fresh[0]
    recs = _records(new.read_bytes())
    session_ids = {r["sessionId"] for r in recs if "sessionId" in r}
    assert session_ids == {new.stem}
    assert new.stem not in {Path(n).stem for n in originals}
    # ids are fresh too, so a dedup by message.id/requestId never merges it with the original
    src_ids: set[tuple[str, str]] = set()
    for src in (SOURCE / "claude").rglob("*.jsonl"):
        src_ids |= set(filter(None, map(_claude_key, _records(src.read_bytes()))))
    new_ids = set(filter(None, map(_claude_key, recs)))
    assert new_ids and not (new_ids & src_ids)
    assert any(_carries_usage(r) for r in recs)
    assert max(_all_ts(new.read_bytes())) >= datetime.now(UTC) - timedelta(seconds=30)

    # and after stopping, every file in the folder is still whole and valid
    for rel, data in _files(dest).items():
        if rel.suffix == ".jsonl":
            assert data.endswith(b"\n"), rel
            _records(data)
        else:
            json.loads(data)


def test_run_without_loop_returns_when_done(replayer: DemoReplayer) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=replayer.run, args=(stop,), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert not stop.is_set()
    assert replayer.step() is False


def test_demo_does_not_import_textual() -> None:
    code = "import sys, tokwatch.demo; assert 'textual' not in sys.modules, 'textual imported'"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
