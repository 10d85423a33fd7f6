"""Gemini CLI's normalizers (JSON documents and JSONL records) on real sessions: cached inside input, thoughts outside output, rewinds, subagents, torn documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import (
    CLAUDE_SESSION,
    GEMINI_POMODORO,
    GEMINI_PRO,
    GEMINI_RUN4,
    dumps,
    gemini_messages,
    make_engine,
    write_lines,
)

from tokwatch.agents import get_agent
from tokwatch.agents.base import BadLine

CLAUDE = get_agent("claude")
CODEX = get_agent("codex")
GEMINI = get_agent("gemini")
KEY = ("claude", CLAUDE_SESSION)


def _gemini_doc(messages: list[dict], session: str = "s-gem") -> bytes:
    return dumps({"sessionId": session, "projectHash": "ph", "messages": messages})


def _message(path: Path, mid: str) -> dict:
    return next(m for m in gemini_messages(path) if m["id"] == mid)


def test_gemini_cached_is_inside_input_and_thoughts_outside_output() -> None:
    m = _message(GEMINI_PRO, "cb6c25d7-5aba-4934-a461-fb184d56de43")
    assert m["tokens"] == {
        "input": 8868,
        "output": 17,
        "cached": 5736,
        "thoughts": 255,
        "tool": 0,
        "total": 9140,
    }
    (t,) = GEMINI.parser(GEMINI_PRO).parse_document(_gemini_doc([m]))
    assert (t.input, t.cache_read, t.cache_write) == (8868 - 5736, 5736, 0)
    assert t.output == 17 + 255  # thoughts billed as output
    assert t.reasoning == 255
    assert t.context == 8868
    assert t.total == m["tokens"]["total"]
    assert t.model == "gemini-3.1-pro-preview"


def test_gemini_tool_tokens_are_prompt_tokens() -> None:
    m = _message(GEMINI_PRO, "cb6c25d7-5aba-4934-a461-fb184d56de43")
    m["tokens"]["tool"] = 500
    m["tokens"]["total"] += 500
    (t,) = GEMINI.parser(GEMINI_PRO).parse_document(_gemini_doc([m]))
    assert t.input == 8868 - 5736 + 500
    assert t.cache_read == 5736
    assert t.context == 8868 + 500
    assert t.total == m["tokens"]["total"]


def test_gemini_all_zero_messages_skipped() -> None:
    zero_first = "e5679916-ec14-4bec-a6a3-53cf2b0e601b"
    assert not any(_message(GEMINI_POMODORO, zero_first)["tokens"].values())
    turns = GEMINI.parser(GEMINI_POMODORO).parse_document(GEMINI_POMODORO.read_bytes())
    assert zero_first not in {t.turn_id for t in turns}
    assert len(turns) == 13
    zero_last = "6f3010d4-1b55-4b40-be54-a6a8231fecdb"
    turns = GEMINI.parser(GEMINI_RUN4).parse_document(GEMINI_RUN4.read_bytes())
    assert zero_last not in {t.turn_id for t in turns}
    assert turns[-1].context == 14522


def test_gemini_json_document_session_and_project() -> None:
    turns = GEMINI.parser(GEMINI_PRO).parse_document(GEMINI_PRO.read_bytes())
    assert {t.session_id for t in turns} == {"b36c9e17-99f8-4acf-b1b3-cef1081a98f6"}
    assert {t.project for t in turns} == {"4aa4775945ced8117110c7783b5623297e21836cf04a6e1dba9fbfeecfc7fcc1"}
    assert not any(t.sidechain for t in turns)
    assert sum(t.total for t in turns) == 934358


# ------------------------------------------------------------------------------ Gemini JSONL (v0.39+)


def _gem_record(mid: str, ts: str, *, inp: int, out: int, cached: int = 0, thoughts: int = 0) -> bytes:
    return dumps(
        {
            "id": mid,
            "timestamp": ts,
            "type": "gemini",
            "content": "[redacted]",
            "model": "gemini-2.5-pro",
            "tokens": {
                "input": inp,
                "output": out,
                "cached": cached,
                "thoughts": thoughts,
                "tool": 0,
                "total": inp + out + thoughts,
            },
        }
    )


def _gem_meta(session: str) -> bytes:
    return dumps(
        {
            "sessionId": session,
            "projectHash": "2d33ff9193c39ffa4b8352af23f3b106d1ceaff756665e12408cb64657965d22",
            "startTime": "2026-04-01T10:00:00.000Z",
            "lastUpdated": "2026-04-01T10:00:00.000Z",
            "kind": "main",
        }
    )


def _gem_user(mid: str, ts: str) -> bytes:
    return dumps({"id": mid, "timestamp": ts, "type": "user", "content": [{"text": "[redacted]"}]})


PARENT = "11111111-2222-3333-4444-555555555555"


def _gemini_jsonl_home(tmp_path: Path) -> tuple[Path, Path, Path]:
    chats = tmp_path / ".gemini" / "tmp" / "myproj" / "chats"
    main = chats / "session-2026-04-01T10-00-11111111.jsonl"
    write_lines(
        main,
        [
            _gem_meta(PARENT),
            _gem_user("u1", "2026-04-01T10:00:01.000Z"),
            # g1 first appended while streaming, then re-appended with its final numbers
            _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=5),
            _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=40, cached=6000, thoughts=100),
            _gem_record("g2", "2026-04-01T10:00:10.000Z", inp=12000, out=300, cached=8000, thoughts=50),
            dumps({"$rewindTo": "g2"}),  # g2 leaves the conversation, its request was billed
            dumps({"$set": {"lastUpdated": "2026-04-01T10:00:20.000Z", "summary": "[redacted]"}}),
            _gem_user("u2", "2026-04-01T10:00:21.000Z"),
            _gem_record("g3", "2026-04-01T10:00:22.000Z", inp=9500, out=20, cached=9000),
        ],
    )
    sub = chats / PARENT / "sub-aaaa.jsonl"
    write_lines(
        sub,
        [
            _gem_meta("99999999-0000-0000-0000-000000000000"),
            _gem_record("s1", "2026-04-01T10:00:30.000Z", inp=50000, out=700, cached=1000),
        ],
    )
    return tmp_path / ".gemini" / "tmp", main, sub


def test_gemini_jsonl_parser_records() -> None:
    path = Path("/h/.gemini/tmp/myproj/chats/session-x.jsonl")
    parser = GEMINI.parser(path)
    assert parser.feed(_gem_meta(PARENT)) == []
    assert parser.feed(_gem_user("u1", "2026-04-01T10:00:01.000Z")) == []
    (t,) = parser.feed(
        _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=40, cached=6000, thoughts=100)
    )
    assert t.session_id == PARENT
    assert t.project == "myproj"
    assert (t.input, t.cache_read, t.output, t.reasoning) == (3000, 6000, 140, 100)
    assert parser.feed(dumps({"$rewindTo": "g1"})) == []
    assert parser.feed(dumps({"$set": {"lastUpdated": "2026-04-01T10:00:20.000Z"}})) == []


def test_gemini_jsonl_last_copy_wins_rewind_keeps_billed_turns_and_subagent(tmp_path: Path) -> None:
    root, main, sub = _gemini_jsonl_home(tmp_path)
    engine = make_engine(root)
    engine.backfill()
    assert engine.skips.lines == 0
    assert set(engine.files) == {main, sub}
    assert list(engine.store.sessions) == [("gemini", PARENT)]  # the subagent is billed to its parent
    s = engine.store.sessions[("gemini", PARENT)]
    by_id = {t.turn_id: t for t in engine.store.turns_of(s.key)}
    assert set(by_id) == {"g1", "g2", "g3", "s1"}  # g2 was rewound away but stays billed
    g1 = by_id["g1"]
    assert (g1.input, g1.cache_read, g1.output) == (3000, 6000, 140)  # the last copy, not the first
    assert by_id["s1"].sidechain
    assert s.totals.turns == 4
    assert s.totals.input == 3000 + 4000 + 500 + 49000
    assert s.totals.cache_read == 6000 + 8000 + 9000 + 1000
    assert s.totals.output == 140 + 350 + 20 + 700
    assert s.totals.reasoning == 150
    # the gauge follows the main chain: g3 (9500), not the later subagent request (50000)
    assert s.context_used == 9500
    assert s.max_context == 12000
    assert s.context_window == 1_048_576
    assert s.project == "myproj"


def test_gemini_jsonl_reappended_smaller_copy_replaces(tmp_path: Path) -> None:
    """Last copy wins even when it is smaller (unlike Claude's max-merge)."""
    chats = tmp_path / ".gemini" / "tmp" / "p" / "chats"
    f = chats / "session-a.jsonl"
    write_lines(
        f,
        [
            _gem_meta("sess-a"),
            _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=500),
            _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=40, cached=8000),
        ],
    )
    engine = make_engine(tmp_path / ".gemini" / "tmp")
    engine.backfill()
    s = engine.store.sessions[("gemini", "sess-a")]
    assert (s.totals.turns, s.totals.input, s.totals.cache_read, s.totals.output) == (1, 1000, 8000, 40)


# ------------------------------------------------------------------------------------ malformed lines


def test_gemini_malformed_jsonl_records_skipped_and_counted(tmp_path: Path) -> None:
    chats = tmp_path / ".gemini" / "tmp" / "p" / "chats"
    f = chats / "session-b.jsonl"
    neg = json.loads(_gem_record("g2", "2026-04-01T10:00:03.000Z", inp=100, out=1))
    neg["tokens"]["thoughts"] = -3
    no_id = json.loads(_gem_record("g3", "2026-04-01T10:00:04.000Z", inp=100, out=1))
    del no_id["id"]
    tokens_str = json.loads(_gem_record("g4", "2026-04-01T10:00:05.000Z", inp=100, out=1))
    tokens_str["tokens"] = "lots"
    bad = [b'{"type":"gemini","tokens":', dumps(neg), dumps(no_id), dumps(tokens_str)]
    parser = GEMINI.parser(f)
    for b in bad:
        with pytest.raises(BadLine):
            parser.feed(b)
    write_lines(
        f,
        [
            _gem_meta("sess-b"),
            _gem_record("g1", "2026-04-01T10:00:02.000Z", inp=9000, out=40),
            *bad,
            _gem_record("g5", "2026-04-01T10:00:06.000Z", inp=9100, out=10),
        ],
    )
    engine = make_engine(tmp_path / ".gemini")
    engine.backfill()
    assert engine.skips.lines == len(bad)
    s = engine.store.sessions[("gemini", "sess-b")]
    assert s.totals.turns == 2
    assert s.totals.total == 9040 + 9110


def test_gemini_torn_document_keeps_previous_turns(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    path.write_bytes(GEMINI_RUN4.read_bytes())
    engine = make_engine(path)
    engine.backfill()
    key = ("gemini", "95ee2bc8-b4a1-47fb-8db8-b0cfe91bee88")
    assert engine.store.sessions[key].totals.total == 119000
    data = GEMINI_RUN4.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # torn mid-rewrite
    assert not engine.refresh([path])
    assert engine.skips.lines == 1
    assert engine.store.sessions[key].totals.total == 119000
    path.write_bytes(data)  # the rewrite completes
    assert engine.refresh([path]).turns == []  # nothing new, nothing doubled
    assert engine.store.sessions[key].totals.total == 119000
