"""Numbers, money, durations and log text as people read them: one function each, used by every output.

Costs are honest: unknown when no turn is priced, a lower bound (`≥`) when only some are.

Text from logs and hook input (projects, models, session ids, paths) is attacker-controlled: a
folder name can hold `ESC ] 52 ; c ; ...` (writes the clipboard), a CSI (`\x9b`, one character),
or a bidi override that reorders what is shown. `clean()` makes such text inert for a terminal,
visibly; `json_escape()` does the same for JSON without losing a character.
"""

from __future__ import annotations

import re

from tokwatch.core.models import Tokens

#: Characters a terminal may act on rather than print: C0 and C1 controls (DEL included), bidi
#: marks, embeddings, overrides and isolates, the line and paragraph separators, lone surrogates
#: (undecodable bytes in a file name), and the invisible tag characters (hidden text).
_UNSAFE_BEYOND_C0 = "\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff\U000e0000-\U000e007f"
#: Invisible joiners and emoji presentation selectors: terminals disagree on the width of what
#: they join (a ZWJ family is 2 cells in one, 6 in another), which breaks borders. Dropped, every
#: character keeps a width all terminals agree on.
_JOINERS = "\u200d\ufe0e\ufe0f"
_CLEAN = re.compile(f"[\x00-\x1f{_UNSAFE_BEYOND_C0}{_JOINERS}]")
#: (JSON strings already escape C0; outside strings, C0 is only the layout's whitespace)
_JSON = re.compile(f"[{_UNSAFE_BEYOND_C0}]")
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c in _JOINERS:
        return ""
    o = ord(c)
    return _SHORT.get(c) or (f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")


def clean(text: str) -> str:
    """Log or hook text made safe to show on a terminal: control characters, bidi controls, lone
    surrogates and tag characters become visible escapes (`\\x1b`, `\\t`, `\\u202e`), so nothing
    is hidden and nothing is acted on; zero-width joiners and emoji variation selectors are
    dropped so every character has one width. Everything else (CJK, emoji, accents) is kept."""
    if _CLEAN.search(text) is None:
        return text
    return _CLEAN.sub(_escape, text)


def _json_escape(m: re.Match[str]) -> str:
    o = ord(m.group())
    if o < 0x10000:
        return f"\\u{o:04x}"
    o -= 0x10000
    return f"\\u{0xD800 + (o >> 10):04x}\\u{0xDC00 + (o & 0x3FF):04x}"


def json_escape(data: bytes | str) -> str:
    """A JSON document (orjson's output) with every character `clean()` would neutralise written as
    a `\\u` escape: the same JSON value, but a terminal showing it acts on nothing. (orjson escapes
    C0 itself, not DEL, C1 or bidi controls.)"""
    text = data.decode() if isinstance(data, bytes) else data
    if _JSON.search(text) is None:
        return text
    return _JSON.sub(_json_escape, text)


#: Shown where a name is unknown (an en dash).
DASH = "\u2013"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def num(n: int) -> str:
    return f"{n:,}"


def compact(n: int) -> str:
    """A token count as every view shows it: 3 significant digits and k, M, G, T
    ('999', '1.53k', '150k', '2.2M'), trailing zeros dropped."""
    if abs(n) < 1000:
        return str(n)
    v = float(n)
    units = ("", "k", "M", "G", "T", "P")
    i = 0
    while abs(v) >= 999.5 and i < len(units) - 1:  # (999.5k rounds to 1M, not '1e+03k')
        v /= 1000
        i += 1
    return f"{v:.3g}{units[i]}"


#: The unit after a token count wherever one is needed ("1.2M tok", "52k tok/min").
TOKENS_UNIT = "tok"


def money(v: float) -> str:
    if v == 0:
        return "$0.00"
    if v < 0.01:
        return "<$0.01"
    return f"${v:,.2f}"


def cost_text(t: Tokens, unknown: str = "unknown") -> str:
    """`unknown` when no turn is priced, '≥$X' (a lower bound) when only some are."""
    if not t.unpriced_turns:
        return money(t.known_cost_usd)
    if t.unpriced_turns >= t.turns:
        return unknown
    return "≥" + money(t.known_cost_usd)


def duration(seconds: float) -> str:
    m = max(0, int(seconds // 60))
    return f"{m // 60}h{m % 60:02d}m"


def project_name(project: str) -> str:
    """A project as views show it: the last folder of a path (POSIX, ~ or Windows); a Gemini
    project known only by its folder's sha256, `gemini:95377b2a`; any other name whole, as written
    (terminal-safe: see `clean`)."""
    if _SHA256.fullmatch(project):
        return f"gemini:{project[:8]}"
    looks_like_path = project.startswith(("/", "~", "\\")) or (
        len(project) > 2 and project[1:3] in (":\\", ":/")
    )
    if not looks_like_path:
        return clean(project) or DASH
    parts = [p for p in project.replace("\\", "/").split("/") if p]
    return clean(parts[-1] if parts else project)
