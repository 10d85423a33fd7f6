"""A randomized warm-start fuzzer: logs are appended to, truncated, rewritten in place (the same
size included), replaced and deleted at random; after every step a fresh start on the ledger and a
tokwatch that kept running must both hold exactly every turn that any version of the logs held.

The oracle is simple because every generated turn is unique: the ledger's totals must equal the
sum of every turn ever present after a step (billed turns outlive their lines), and a fresh read
of the logs alone must never see more.

Each step gives the file a new, strictly later mtime: real writes a few milliseconds apart can
share one (the kernel's file times are coarse), and a rewrite of the same size with the same mtime
is invisible to any stat-based reader (docs/robustness.md says so).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import orjson
import pytest

from tokwatch.core.ledger import Ledger
from tokwatch.core.store import Store
from tokwatch.ingest.engine import Engine
from tokwatch.ingest.setup import make_pricer
from tokwatch.output.export import rows

CODEX_ID = "019c0000-0000-7000-8000-00000000c0de"


class Logs:
    """Two logs (Claude, Codex) under `root`, and every turn they ever held."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.rng = rng
        self.claude = root / "claude" / "projects" / "-p" / "s-fuzz.jsonl"
        self.codex = (
            root
            / "codex"
            / "sessions"
            / "2026"
            / "03"
            / "01"
            / f"rollout-2026-03-01T10-00-00-{CODEX_ID}.jsonl"
        )
        #: each file's lines now, with the key of the turn each one holds (None: not a turn)
        self.lines: dict[Path, list[tuple[bytes, str | None]]] = {self.claude: [], self.codex: []}
        self.truth: dict[str, tuple[int, int]] = {}  # turn key -> (input, output), ever held
        self.n = 0
        self.clock = 1_800_000_000_000_000_000
        for p in self.lines:
            p.parent.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ lines
    def _claude(self) -> tuple[bytes, str, int, int]:
        self.n += 1
        mid, inp, out = f"msg_{self.n:06d}", self.rng.randint(1, 999), self.rng.randint(1, 999)
        line = orjson.dumps(
            {
                "type": "assistant",
                "sessionId": "s-fuzz",
                "cwd": "/p",
                "timestamp": f"2026-03-01T10:{self.n // 60 % 60:02d}:{self.n % 60:02d}.000Z",
                "requestId": f"req_{self.n:06d}",
                "message": {
                    "id": mid,
                    "model": "claude-sonnet-4-5",
                    "usage": {"input_tokens": inp, "output_tokens": out},
                },
            }
        )
        return line, mid, inp, out

    def _codex(self) -> tuple[bytes, str, int, int]:
        self.n += 1
        ts = f"2026-03-01T10:{self.n // 60 % 60:02d}:{self.n % 60:02d}.{self.n % 1000:03d}Z"
        inp, out = self.rng.randint(1, 999), self.rng.randint(1, 999)
        usage = {
            "input_tokens": inp,
            "cached_input_tokens": 0,
            "output_tokens": out,
            "reasoning_output_tokens": 0,
        }
        total = {**usage, "total_tokens": 1_000_000 + self.n}
        line = orjson.dumps(
            {
                "timestamp": ts,
                "type": "event_msg",
                "payload": {
                    "type": "token_count",
                    "info": {
                        "total_token_usage": total,
                        "last_token_usage": usage,
                        "model_context_window": 272000,
                    },
                },
            }
        )
        return line, f"{ts}#{total['total_tokens']}", inp, out

    def _codex_head(self) -> list[tuple[bytes, str | None]]:
        meta = {
            "timestamp": "2026-03-01T10:00:00.000Z",
            "type": "session_meta",
            "payload": {"id": CODEX_ID, "cwd": "/p"},
        }
        return [(orjson.dumps(meta), None), self._context()]

    @staticmethod
    def _context() -> tuple[bytes, str | None]:  # Codex repeats identical turn_context lines
        line = {
            "timestamp": "2026-03-01T10:00:00.000Z",
            "type": "turn_context",
            "payload": {"model": "gpt-5-codex"},
        }
        return orjson.dumps(line), None

    def new_line(self, path: Path, length: int | None = None) -> tuple[bytes, str | None] | None:
        """A new turn's line (of exactly `length` bytes when asked; None if none came out so)."""
        for _ in range(200):
            line, key, inp, out = self._claude() if path == self.claude else self._codex()
            if length is None or len(line) == length:
                self.truth[key] = (inp, out)
                return line, key
        return None

    # ------------------------------------------------------------ steps
    def _write(self, path: Path, lines: list[tuple[bytes, str | None]], *, replace: bool = False) -> None:
        data = b"".join(x + b"\n" for x, _ in lines)
        if replace:
            tmp = path.with_name(".tmp-" + path.name)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        else:
            with open(path, "r+b" if path.exists() else "wb") as f:  # in place: same inode
                f.write(data)
                f.truncate()
        self.lines[path] = lines
        self.clock += 50_000_000
        os.utime(path, ns=(self.clock, self.clock))

    def step(self) -> str:
        path = self.rng.choice(list(self.lines))
        lines = self.lines[path]
        head = 2 if path == self.codex else 0
        if not path.exists() or not lines:
            first = self.new_line(path)
            assert first is not None
            self._write(path, (self._codex_head() if path == self.codex else []) + [first])
            return "create"
        kind = self.rng.choice(["append", "append", "truncate", "same_size", "rewrite", "replace", "delete"])
        if kind == "append":
            new = [self._context()] if path == self.codex and self.rng.random() < 0.5 else []
            new += [x for x in (self.new_line(path) for _ in range(self.rng.randint(1, 3))) if x]
            with open(path, "ab") as f:
                f.write(b"".join(x + b"\n" for x, _ in new))
            self.lines[path] = lines + new
            self.clock += 50_000_000
            os.utime(path, ns=(self.clock, self.clock))
        elif kind == "truncate" and len(lines) > head + 1:
            self._write(path, lines[: self.rng.randint(head + 1, len(lines) - 1)])
        elif kind == "same_size" and len(lines) > head:
            # the last line replaced by another turn of exactly its length: the size, the first KiB
            # and (often) the bytes before the old offset are all unchanged
            new = self.new_line(path, len(lines[-1][0]))
            if new is None:
                return "skip"
            self._write(path, [*lines[:-1], new])
        elif kind in ("rewrite", "replace"):
            keep = lines[: self.rng.randint(head, len(lines))]
            new = [x for x in (self.new_line(path) for _ in range(self.rng.randint(1, 3))) if x]
            self._write(path, keep + new, replace=kind == "replace")
        elif kind == "delete":
            path.unlink()
            self.lines[path] = []
        return kind

    def current(self) -> tuple[int, int, int]:
        """What the logs alone hold now."""
        keys = [k for p, ls in self.lines.items() if p.exists() for _, k in ls if k is not None]
        return len(keys), sum(self.truth[k][0] for k in keys), sum(self.truth[k][1] for k in keys)

    def totals(self) -> tuple[int, int, int]:
        return len(self.truth), sum(i for i, _ in self.truth.values()), sum(o for _, o in self.truth.values())


def _totals(store: Store) -> tuple[int, int, int]:
    rs = rows(store)
    return sum(r.turns for r in rs), sum(r.input_tokens for r in rs), sum(r.output_tokens for r in rs)


@pytest.mark.parametrize("seed", range(10))
def test_random_rewrites_never_lose_or_double_a_turn(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    logs = Logs(tmp_path / "logs", rng)
    data = tmp_path / "ledger"
    live: Engine | None = None
    history: list[str] = []
    for _ in range(25):
        history.append(logs.step())
        warm = Engine(Store(make_pricer(), Ledger.at(data)), [tmp_path / "logs"])
        warm.backfill()
        assert _totals(warm.store) == logs.totals(), f"warm start after {history}"
        warm.ledger.close()
        if live is None:
            live = Engine(Store(make_pricer(), Ledger.at(data)), [tmp_path / "logs"])
            live.backfill()
        else:
            live.rescan()
        assert _totals(live.store) == logs.totals(), f"live after {history}"
        fresh = Engine(Store(make_pricer(), Ledger.memory()), [tmp_path / "logs"])
        fresh.backfill()
        assert _totals(fresh.store) == logs.current(), f"a fresh read after {history}"
