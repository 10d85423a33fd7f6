"""A deterministic few weeks of Claude Code history, as log files, for the insights view's tests,
snapshots and the user guide's screenshot: several projects and models, cache reads and writes
(5-minute and 1-hour), prompts above Sonnet's 200k price tier, and a day whose caching broke.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson

PROJECTS = (
    "/home/dev/work/billing-api",
    "/home/dev/work/web-app",
    "/home/dev/oss/tokwatch",
    "/home/dev/scratch/notes",
    "/home/dev/work/infra",
)
MODELS = ("claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")


def claude_line(
    session: str,
    msg: str,
    ts: float,
    model: str,
    cwd: str,
    *,
    inp: int,
    cache_read: int,
    cache_write: int,
    cache_write_1h: int = 0,
    out: int,
) -> bytes:
    """One Claude Code assistant line with its usage, as the agent appends it."""
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"
    return (
        orjson.dumps(
            {
                "isSidechain": False,
                "type": "assistant",
                "cwd": cwd,
                "sessionId": session,
                "message": {
                    "model": model,
                    "id": f"msg_{msg}",
                    "role": "assistant",
                    "usage": {
                        "input_tokens": inp,
                        "cache_read_input_tokens": cache_read,
                        "cache_creation_input_tokens": cache_write,
                        "cache_creation": {
                            "ephemeral_5m_input_tokens": cache_write - cache_write_1h,
                            "ephemeral_1h_input_tokens": cache_write_1h,
                        },
                        "output_tokens": out,
                    },
                },
                "requestId": f"req_{msg}",
                "timestamp": stamp,
            }
        )
        + b"\n"
    )


def slug(cwd: str) -> str:
    return cwd.replace("/", "-")


def write_history(root: Path, now: float, *, days: int = 40, seed: int = 7) -> dict[str, int]:
    """Claude sessions over the `days` before `now` under `root/claude/projects`; what was written."""
    rng = random.Random(seed)
    sessions = turns = 0
    for day in range(days, 0, -1):
        broken = day == 9  # a workflow change that broke caching for a day
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            sessions += 1
            sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            cwd = rng.choice(PROJECTS[: 3 + (day % 3)])
            model = rng.choices(MODELS, weights=(3, 5, 2))[0]
            start = now - day * 86400 + rng.randint(0, 20 * 3600)
            path = root / "claude" / "projects" / slug(cwd) / f"{sid}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            ctx = rng.randint(8_000, 20_000)
            lines = []
            for n in range(rng.randint(4, 30)):
                turns += 1
                grow = rng.randint(500, 12_000)
                big = model.startswith("claude-sonnet") and rng.random() < 0.1
                read = 0 if broken else ctx + (210_000 if big else 0)
                write = grow + (ctx if broken else 0)
                lines.append(
                    claude_line(
                        sid,
                        f"{sid[:8]}_{n:04d}",
                        start + n * rng.randint(20, 240),
                        model,
                        cwd,
                        inp=rng.randint(1, 40),
                        cache_read=read,
                        cache_write=write,
                        cache_write_1h=write if rng.random() < 0.2 else 0,
                        out=rng.randint(80, 4_000),
                    )
                )
                ctx = min(ctx + grow, 180_000)
            path.write_bytes(b"".join(lines))
    return {"sessions": sessions, "turns": turns}
