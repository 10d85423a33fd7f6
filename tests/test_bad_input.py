"""Bad input, hostile text and faults: skipped and counted, never a crash, a hang or a lost number."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokwatch.agents import all_agents, get_agent
from tokwatch.agents.base import BadLine
from tokwatch.core.models import Turn
from tokwatch.core.store import Changes, Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.output import export

BAD = Path(__file__).parent / "fixtures" / "bad"
CLAUDE = (BAD / "claude_session.jsonl").read_bytes()
CODEX = (BAD / "codex_rollout.jsonl").read_bytes()
GEMINI_JSON = (BAD / "gemini_session.json").read_bytes()
GEMINI_JSONL = (BAD / "gemini_session.jsonl").read_bytes()

# where each sample must live for its agent to claim it by path
LAYOUT = {
    "claude": ("claude/projects/-p/4d5611e5-241a-462a-8d15-5122611a9569.jsonl", CLAUDE),
    "codex": (
        "codex/sessions/2026/02/23/rollout-2026-02-23T20-34-25-019c8bfe-ec25-79e0-97d7-bda6a9c575ff.jsonl",
        CODEX,
    ),
    "gemini_json": (".gemini/tmp/p/chats/session-1.json", GEMINI_JSON),
    "gemini_jsonl": (".gemini/tmp/p/chats/session-2.jsonl", GEMINI_JSONL),
}


def totals(store: Store) -> dict[tuple[str, str, str], tuple[int, ...]]:
    out = {}
    for s in store.sessions.values():
        for model, t in s.by_model.items():
            out[(s.agent, s.session_id, model)] = (
                t.turns,
                t.input,
                t.cache_read,
                t.cache_write,
                t.output,
                t.reasoning,
            )
    return out


def read(root: Path) -> Engine:
    engine = Engine(Store(make_pricer()), [root])
    engine.backfill()
    return engine


def reference(kind: str, tmp: Path) -> dict[tuple[str, str, str], tuple[int, ...]]:
    rel, data = LAYOUT[kind]
    p = tmp / "ref" / kind / rel
    p.parent.mkdir(parents=True)
    p.write_bytes(data)
    return totals(read(tmp / "ref" / kind).store)


def deep(n: int) -> bytes:
    return b'{"type":"assistant","message":' + b"[" * n + b"]" * n + b"}"


HOSTILE_LINES = [
    b"not json at all",
    b'{"type":"assistant","message":{"usage":{"input_tokens":1}',  # torn (no closing braces)
    b'\xff\xfe{"type":"assistant"}\x80',  # invalid UTF-8
    deep(100_000),  # nesting far too deep
    b'{"type":"assistant","message":"a string"}',  # wrong shape
    b'{"type":"assistant","message":{"id":"m_big","usage":{"input_tokens":1000000000000}}}',  # >= 10^12
    b'{"type":"assistant","message":{"id":"m_neg","usage":{"input_tokens":-1}}}',
    b'{"type":"assistant","message":{"id":"m_flt","usage":{"input_tokens":1.5}}}',
    b'{"type":"assistant","message":{"id":"m_nan","usage":{"input_tokens":NaN}}}',
    b'{"type":"assistant","message":{"id":"m_inf","usage":{"input_tokens":Infinity}}}',
    b'{"type":"assistant","message":null,"sessionId":null}',  # null where an object belongs
    b'{"type":"assistant","message":{"id":"m_str","usage":{"output_tokens":"12"}}}',
    b'["assistant"]',
]


def test_malformed_lines_are_skipped_counted_and_valid_lines_exact(tmp_path: Path) -> None:
    ref = reference("claude", tmp_path)
    lines = CLAUDE.splitlines()
    mixed = []
    for i, line in enumerate(lines):
        mixed.append(line)
        mixed.append(HOSTILE_LINES[i % len(HOSTILE_LINES)])
    rel, _ = LAYOUT["claude"]
    p = tmp_path / "logs" / rel
    p.parent.mkdir(parents=True)
    p.write_bytes(b"\n".join(mixed) + b"\n")
    engine = read(tmp_path / "logs")
    assert totals(engine.store) == ref
    assert engine.skips.lines == len(lines)  # one hostile line after each valid one
    assert engine.skips.files == 1


def test_codex_and_gemini_malformed(tmp_path: Path) -> None:
    bad_lines = {
        "codex": [
            b"{oops",
            b'{"type":"event_msg","payload":{"type":"token_count","info":{"total_token_usage":7}}}',
            b'{"type":"turn_context","payload":[]}',
        ],
        "gemini_jsonl": [
            b"{oops",
            b'{"type":"gemini","id":"x","tokens":{"input":-3}}',
            b'{"type":"gemini","tokens":{"input":3}}',  # no id
        ],
    }
    unknown_but_valid = b'{"type":"something_new","payload":{"x":1}}'  # a future record type: ignored
    for kind, bad in bad_lines.items():
        ref = reference(kind, tmp_path)
        rel, data = LAYOUT[kind]
        p = tmp_path / kind / rel
        p.parent.mkdir(parents=True)
        p.write_bytes(b"\n".join([*bad, unknown_but_valid, *data.splitlines(), *bad]) + b"\n")
        engine = read(tmp_path / kind)
        assert totals(engine.store) == ref, kind
        assert engine.skips.lines == 2 * len(bad), kind


def test_gemini_document_malformed_is_one_skip_and_recovers(tmp_path: Path) -> None:
    rel, data = LAYOUT["gemini_json"]
    p = tmp_path / "g" / rel
    p.parent.mkdir(parents=True)
    p.write_bytes(data[: len(data) // 2])  # torn mid-rewrite
    engine = read(tmp_path / "g")
    assert engine.skips.lines == 1 and not engine.store.sessions
    p.write_bytes(data)
    engine.refresh([p])
    assert engine.skips.lines == 0
    assert totals(engine.store) == reference("gemini_json", tmp_path)


def test_huge_line_is_read_whole_and_fast(tmp_path: Path) -> None:
    ref = reference("claude", tmp_path)
    rel, _ = LAYOUT["claude"]
    p = tmp_path / "h" / rel
    p.parent.mkdir(parents=True)
    huge = orjson.dumps({"type": "user", "toolUseResult": {"stdout": "x" * (30 << 20)}})
    lines = CLAUDE.splitlines()
    p.write_bytes(b"\n".join([*lines[:10], huge, *lines[10:]]) + b"\n")
    t0 = time.perf_counter()
    engine = read(tmp_path / "h")
    elapsed = time.perf_counter() - t0
    assert totals(engine.store) == ref
    assert engine.skips.lines == 0
    assert elapsed < 5.0  # generous bound: guards against quadratic re-copying of the line


def test_over_long_line_is_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokwatch.core import tailer

    monkeypatch.setattr(tailer, "MAX_LINE", 1 << 16)
    ref = reference("claude", tmp_path)
    rel, _ = LAYOUT["claude"]
    p = tmp_path / "o" / rel
    p.parent.mkdir(parents=True)
    lines = CLAUDE.splitlines()
    monster = b'{"type":"assistant","x":"' + b"y" * (3 << 20) + b'"}'
    p.write_bytes(b"\n".join([*lines[:5], monster, *lines[5:]]) + b"\n")
    engine = read(tmp_path / "o")
    assert totals(engine.store) == ref
    assert engine.skips.lines == 1


def _bounded(fn: object, seconds: float = 10.0) -> None:
    """Run fn in a thread; fail (instead of hanging the suite) if it does not finish in time."""
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()  # type: ignore[operator]
        except BaseException as e:
            errors.append(e)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(seconds), "blocked"
    if errors:
        raise errors[0]


def test_special_files_never_block_or_crash(tmp_path: Path) -> None:
    root = tmp_path / "claude" / "projects" / "-p"
    root.mkdir(parents=True)
    (root / "good.jsonl").write_bytes(CLAUDE)
    os.mkfifo(root / "fifo.jsonl")
    (root / "dir.jsonl").mkdir()
    (root / "dir.jsonl" / "inner.jsonl").write_bytes(b"garbage\n")
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "self.jsonl").symlink_to(root / "self.jsonl")  # a symlink loop
    (root / "binary.jsonl").write_bytes(os.urandom(20000))
    unreadable = root / "secret.jsonl"
    unreadable.write_bytes(CLAUDE)
    unreadable.chmod(0)
    sock = socket.socket(socket.AF_UNIX)
    sock_path = root / "s.jsonl"
    with contextlib.suppress(OSError):
        sock.bind(str(sock_path))
    result: list[Engine] = []
    _bounded(lambda: result.append(read(tmp_path / "claude")))
    engine = result[0]
    sock.close()
    assert ("claude", "4d5611e5-241a-462a-8d15-5122611a9569") in engine.store.sessions
    assert not any(p.name in ("fifo.jsonl", "s.jsonl") for p in engine.files)
    s = engine.store.sessions[("claude", "4d5611e5-241a-462a-8d15-5122611a9569")]
    # the readable copy counts once even if root can read the chmod-0 copy: turns are keyed
    assert s.totals.output == 406  # the main file alone (its subagents are not in this folder)


def test_fifo_swapped_in_after_discovery_does_not_block(tmp_path: Path) -> None:
    rel, _ = LAYOUT["claude"]
    p = tmp_path / "f" / rel
    p.parent.mkdir(parents=True)
    p.write_bytes(CLAUDE)
    engine = read(tmp_path / "f")
    p.unlink()
    os.mkfifo(p)
    _bounded(lambda: engine.refresh([p]), 5.0)
    assert p not in engine.files  # a FIFO is not a log: dropped, totals kept
    assert engine.store.sessions


def test_root_appears_later_and_root_removed(tmp_path: Path) -> None:
    root = tmp_path / "later" / "claude"
    engine = Engine(Store(make_pricer()), [root], debounce_ms=20, step_ms=10)
    engine.backfill()
    got: list[Turn] = []
    stop = threading.Event()

    def on_turns(changes: Changes) -> None:
        got.extend(c.turn for c in changes.turns)

    th = threading.Thread(target=engine.follow, args=(stop, on_turns), daemon=True)
    th.start()
    try:
        rel, _ = LAYOUT["claude"]
        p = root / rel.removeprefix("claude/")
        p.parent.mkdir(parents=True)
        p.write_bytes(CLAUDE)
        deadline = time.monotonic() + 8
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got, "a root that appeared later was not followed"
        shutil.rmtree(root)
        time.sleep(0.3)
        assert th.is_alive()
    finally:
        stop.set()
        th.join(5)
    assert not th.is_alive()


def test_csv_formula_guard_and_literal_text() -> None:
    store = Store(make_pricer())
    hostile = '=HYPERLINK("http://x")'
    store.apply(
        [
            Turn(
                agent="claude",
                session_id="+s",
                turn_id="1",
                model="@m",
                timestamp=1.0,
                input=1,
                project=hostile,
            )
        ]
    )
    text = export.to_csv(export.rows(store))
    row = text.splitlines()[1]
    assert "'=HYPERLINK" in row and ",'+s," in row and ",'@m," in row
    for cell in ("-1", "\tx", "\rx"):
        assert export.guard_cell(cell) == "'" + cell
    assert export.guard_cell("[red]x[/red]") == "[red]x[/red]"


def test_export_full_disk_leaves_old_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "snap.csv"
    target.write_text("old\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        export.write_atomic(target, "new\n" * 1000)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["snap.csv"]


def test_export_cli_reports_skips_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tokwatch.cli import main

    rel, _ = LAYOUT["claude"]
    p = tmp_path / rel
    p.parent.mkdir(parents=True)
    p.write_bytes(CLAUDE + b"garbage\n{bad\n")
    assert main(["export", str(tmp_path), "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert "skipped 2 malformed lines in 1 files" in err


def test_export_cli_full_disk_is_an_error_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokwatch.cli import main

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    assert main(["export", str(BAD), "--no-cache", "-o", str(tmp_path / "out.csv")]) == 1
    assert "No space left" in capsys.readouterr().err


# ------------------------------------------------------------------ property-based
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_keys = st.sampled_from(
    [
        "type",
        "message",
        "usage",
        "input_tokens",
        "output_tokens",
        "payload",
        "info",
        "tokens",
        "id",
        "total_token_usage",
        "last_token_usage",
        "sessionId",
        "$set",
        "$rewindTo",
        "model",
        "cached",
        "input",
    ]
)
_shaped = st.recursive(
    st.none()
    | st.integers(min_value=-5, max_value=10**13)
    | st.sampled_from(["assistant", "gemini", "event_msg", "token_count"]),
    lambda children: st.dictionaries(_keys, children, max_size=5) | st.lists(children, max_size=3),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=st.one_of(st.binary(max_size=200), _json_values.map(orjson.dumps), _shaped.map(orjson.dumps)))
def test_normalizers_only_raise_badline(line: bytes) -> None:
    for agent in all_agents():
        parser = agent.parser(Path("/x/projects/p/s.jsonl"))
        try:
            turns = parser.feed(line)
        except BadLine:
            continue
        except NotImplementedError:
            continue
        for t in turns:
            assert min(t.input, t.cache_read, t.cache_write, t.output, t.reasoning) >= 0
            assert t.reasoning <= t.output or agent.name not in ("codex", "gemini")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.one_of(st.binary(max_size=300), _shaped.map(orjson.dumps)))
def test_document_parser_only_raises_badline(doc: bytes) -> None:
    gemini = get_agent("gemini")
    assert gemini is not None
    with contextlib.suppress(BadLine):
        gemini.parser(Path("/x/.gemini/tmp/p/chats/s.json")).parse_document(doc)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(sorted(LAYOUT)),
    frac=st.floats(min_value=0, max_value=1),
    frac2=st.floats(min_value=0, max_value=1),
)
def test_cut_anywhere_then_append_rest_gives_same_totals(
    tmp_path_factory: pytest.TempPathFactory, kind: str, frac: float, frac2: float
) -> None:
    tmp = tmp_path_factory.mktemp("cut")
    ref = reference(kind, tmp)
    rel, data = LAYOUT[kind]
    cut1 = int(len(data) * frac)
    cut2 = cut1 + int((len(data) - cut1) * frac2)
    p = tmp / "live" / rel
    p.parent.mkdir(parents=True)
    p.write_bytes(data[:cut1])
    engine = read(tmp / "live")
    for end in (cut2, len(data)):
        if kind == "gemini_json":
            p.write_bytes(data[:end])  # documents are rewritten whole
        else:
            with open(p, "ab") as f:
                f.write(data[p.stat().st_size : end])
        engine.refresh([p.parent])
        engine.refresh([p])
    assert totals(engine.store) == ref
    assert engine.skips.lines == 0
