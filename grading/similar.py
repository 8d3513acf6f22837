"""Shared code between hand-ins: winnowed fingerprints of normalised token k-grams (MOSS's method).

Schleimer, Wilkerson and Aiken, "Winnowing: local algorithms for document fingerprinting" (SIGMOD 2003):

1. each code cell is tokenised (the standard library's ``tokenize``) and *normalised*: comments and
   blank lines dropped, every identifier becomes ``N``, every number ``0``, every string ``S``
   (keywords and operators stay), so renaming variables or rewording comments does not hide a copy;
   IPython lines (``!pip``, ``%matplotlib``) are dropped, and code that does not tokenise is split by a
   plain regex instead;
2. every run of K tokens (a k-gram) is hashed, within its cell (cells may be reordered freely);
3. in every window of WINDOW consecutive hashes the smallest is kept (winnowing): any shared run of
   at least K + WINDOW - 1 tokens yields a shared fingerprint, and a notebook keeps ~2/(WINDOW+1) of its hashes;
4. fingerprints of the course's own notebooks (``--template``) are dropped, and so is any fingerprint
   found in more than max(3, 10%) of the class: code everybody has is not unusual;
5. a pair's score is its shared fingerprints over the smaller notebook's count: 1.0 means all of the
   smaller notebook's unusual code is also in the other.

The result ranks pairs for a look; it is not a verdict, and the reports say so.
"""
from __future__ import annotations

import html
import io
import json
import keyword
import math
import os
import re
import tokenize
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations

from .batch import Member, list_members, load_member, run_all

K, WINDOW = 12, 8
COMMON_SHARE, COMMON_MIN = 0.10, 3
MIN_SHARE = 0.25       # list pairs from this score up
MIN_SHARED = 8          # fewer shared fingerprints than this is chance, whatever the share
NOTICE = ("Shared code is a reason to look, not a finding: students may share a public source, "
          "the course's own code (pass it with --template), or work they were allowed to do together. "
          "Read the cells side by side before concluding anything.")

_MAGIC = re.compile(r"^\s*(?:[!%?]|\w+\s*=\s*!)")
_FALLBACK = re.compile(r"#[^\n]*|\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'"
                       r"|\d[\w.]*|[A-Za-z_]\w*|\n|\S")
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}


class SimilarityError(Exception):
    """A template that cannot be read."""


def strip_magics(source: str) -> str:
    """Blank IPython lines (shell escapes, line and cell magics), keeping line numbers."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        lines[0] = ""
    return "\n".join("" if _MAGIC.match(line) else line for line in lines) + "\n"


def _token(kind: int, text: str) -> str | None:
    if kind == tokenize.NAME:
        return text if keyword.iskeyword(text) else "N"
    if kind == tokenize.NUMBER:
        return "0"
    if kind == tokenize.STRING:
        return "S"
    if kind == tokenize.NEWLINE:
        return ";"
    if kind == tokenize.INDENT:
        return "{"
    if kind == tokenize.DEDENT:
        return "}"
    if kind in _SKIP or not text.strip():
        return None
    return text


def normalised_tokens(source: str) -> list[tuple[str, int]]:
    """(normalised token, line) for a cell's code; never raises."""
    code = strip_magics(source)
    tokens: list[tuple[str, int]] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            norm = _token(tok.type, tok.string)
            if norm is not None:
                tokens.append((norm, tok.start[0]))
        return tokens
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass
    tokens = []
    line = 1
    for found in _FALLBACK.finditer(code):
        text = found.group()
        if text == "\n":
            line += 1
            continue
        if not text.startswith("#"):
            first = text[0]
            norm = ("S" if first in "\"'" else "0" if first.isdigit() else
                    (text if keyword.iskeyword(text) else "N") if first.isalpha() or first == "_" else text)
            tokens.append((norm, line))
        line += text.count("\n")
    return tokens


def kgram_hashes(tokens: list[tuple[str, int]], k: int = K) -> list[tuple[int, int, int]]:
    """(hash, first line, last line) of every k-gram; a stable hash, the same in every process."""
    words = [t for t, _ in tokens]
    return [(zlib.crc32("\x1f".join(words[i:i + k]).encode()), tokens[i][1], tokens[i + k - 1][1])
            for i in range(len(tokens) - k + 1)]


def winnow(hashes: list[tuple[int, int, int]], window: int = WINDOW) -> list[tuple[int, int, int]]:
    """The smallest hash of each window (the rightmost on ties), each selected position once."""
    if not hashes:
        return []
    if len(hashes) <= window:
        best = min(range(len(hashes)), key=lambda i: (hashes[i][0], -i))
        return [hashes[best]]
    chosen: list[int] = []
    for start in range(len(hashes) - window + 1):
        best = start
        for i in range(start + 1, start + window):
            if hashes[i][0] <= hashes[best][0]:
                best = i
        if not chosen or chosen[-1] != best:
            chosen.append(best)
    return [hashes[i] for i in chosen]


@dataclass
class Fingerprinted:
    label: str
    error: str | None = None
    sources: dict[int, str] = field(default_factory=dict)                    # cell number -> code
    prints: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)  # hash -> [(cell, line0, line1)]


def code_cells(nb: dict) -> dict[int, str]:
    cells = {}
    for number, cell in enumerate(nb.get("cells", []), start=1):
        if cell.get("cell_type") == "code":
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            if source.strip():
                cells[number] = source
    return cells


def fingerprint_member(task: tuple[Member, int, int]) -> Fingerprinted:
    member, k, window = task
    loaded, _ = load_member(member)
    result = Fingerprinted(member.label)
    if loaded.nb is None:
        result.error = loaded.error
        return result
    result.sources = code_cells(loaded.nb)
    for number, source in result.sources.items():
        for value, first, last in winnow(kgram_hashes(normalised_tokens(source), k), window):
            result.prints.setdefault(value, []).append((number, first, last))
    return result


def template_hashes(paths: list[str], k: int = K) -> set[int]:
    """Every k-gram hash of the course's own notebooks (all of them, not only the winnowed ones)."""
    hashes: set[int] = set()
    members, _ = list_members(paths)
    if not members:
        raise SimilarityError(f"no notebook in the template(s) {', '.join(paths)}")
    for member in members:
        loaded, _ = load_member(member)
        if loaded.nb is None:
            raise SimilarityError(f"template {member.label}: {loaded.error}")
        for source in code_cells(loaded.nb).values():
            hashes.update(h for h, _, _ in kgram_hashes(normalised_tokens(source), k))
    return hashes


@dataclass
class Pair:
    a: Fingerprinted
    b: Fingerprinted
    shared: set[int]
    score: float
    share_a: float
    share_b: float

    def cell_pairs(self, limit: int = 6) -> list[tuple[int, int, int]]:
        """(cell in a, cell in b, fingerprints they share), most first."""
        counts: Counter = Counter()
        for value in self.shared:
            for ca in {c for c, _, _ in self.a.prints[value]}:
                for cb in {c for c, _, _ in self.b.prints[value]}:
                    counts[(ca, cb)] += 1
        return [(ca, cb, n) for (ca, cb), n in counts.most_common(limit)]

    def lines(self, side: Fingerprinted, cell: int) -> set[int]:
        """The lines of ``cell`` covered by shared fingerprints (1-based within the cell)."""
        covered: set[int] = set()
        for value in self.shared:
            for c, first, last in side.prints[value]:
                if c == cell:
                    covered.update(range(first, last + 1))
        return covered

    def as_dict(self) -> dict:
        return {"a": self.a.label, "b": self.b.label, "score": round(self.score, 4),
                "shared_fingerprints": len(self.shared), "share_a": round(self.share_a, 4),
                "share_b": round(self.share_b, 4),
                "cells": [{"a": ca, "b": cb, "shared": n} for ca, cb, n in self.cell_pairs()]}


@dataclass
class Similarity:
    notebooks: list[Fingerprinted]
    pairs: list[Pair]
    common_limit: int
    templates: list[str]

    @property
    def unreadable(self) -> list[Fingerprinted]:
        return [n for n in self.notebooks if n.error]


def similar_notebooks(paths: list[str], templates: list[str] = (), k: int = K, window: int = WINDOW,
                      min_share: float = MIN_SHARE, min_shared: int = MIN_SHARED, jobs: int | None = None) -> Similarity:
    """Rank the pairs of notebooks under PATHs by their share of unusual fingerprints."""
    if k < 2 or window < 1:
        raise SimilarityError("-k must be at least 2 and --window at least 1")
    members, _ = list_members(paths)
    banned = template_hashes(list(templates), k) if templates else set()
    notebooks = run_all(fingerprint_member, [(m, k, window) for m in members], jobs)
    readable = [n for n in notebooks if not n.error]
    limit = max(COMMON_MIN, math.ceil(COMMON_SHARE * len(readable)))
    holders: dict[int, list[int]] = defaultdict(list)
    for index, nb in enumerate(readable):
        for value in nb.prints:
            if value not in banned:
                holders[value].append(index)
    unusual = {value for value, who in holders.items() if len(who) <= limit}
    own = [sum(1 for v in nb.prints if v in unusual) for nb in readable]
    shared: dict[tuple[int, int], set[int]] = defaultdict(set)
    for value in unusual:
        for i, j in combinations(holders[value], 2):
            shared[(i, j)].add(value)
    pairs = []
    for (i, j), values in shared.items():
        if len(values) < min_shared:
            continue
        share_a, share_b = len(values) / own[i], len(values) / own[j]
        score = max(share_a, share_b)
        if score >= min_share:
            pairs.append(Pair(readable[i], readable[j], values, score, share_a, share_b))
    pairs.sort(key=lambda p: (-p.score, -len(p.shared), p.a.label, p.b.label))
    return Similarity(notebooks, pairs, limit, list(templates))


# --- reports -----------------------------------------------------------------------------------------

def _short_names(result: Similarity) -> dict[str, str]:
    """Labels relative to the folder (or zip) all notebooks sit in, for people to read."""
    labels = [nb.label for nb in result.notebooks]
    try:
        folder = os.path.commonpath([os.path.dirname(label) or "." for label in labels]) if labels else ""
    except ValueError:
        folder = ""
    return {label: os.path.relpath(label, folder) if folder else label for label in labels}


def to_text(result: Similarity) -> str:
    lines = [NOTICE, "", f"{len(result.notebooks)} notebooks; fingerprints in more than {result.common_limit} "
             "notebooks are treated as common" + (f"; templates: {', '.join(result.templates)}" if result.templates else ""),
             f"{len(result.pairs)} pairs share unusual code (score = shared / the smaller notebook's fingerprints)"]
    short = _short_names(result)
    for pair in result.pairs:
        cells = ", ".join(f"cell {ca} ~ cell {cb}" for ca, cb, _ in pair.cell_pairs(3))
        lines.append(f"  {pair.score:5.2f}  {short[pair.a.label]}  <->  {short[pair.b.label]}  "
                     f"({len(pair.shared)} shared; {cells})")
    lines += [f"unreadable: {nb.error}" for nb in result.unreadable]
    return "\n".join(lines) + "\n"


def to_json(result: Similarity) -> str:
    return json.dumps([p.as_dict() for p in result.pairs], indent=2, ensure_ascii=False) + "\n"


def to_csv(result: Similarity) -> str:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["a", "b", "score", "shared_fingerprints", "share_a", "share_b", "cells"])
    for pair in result.pairs:
        d = pair.as_dict()
        writer.writerow([d["a"], d["b"], d["score"], d["shared_fingerprints"], d["share_a"], d["share_b"],
                         " ".join(f"{c['a']}~{c['b']}" for c in d["cells"])])
    return buffer.getvalue()


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1rem 1.5rem 3rem; font-size: 14px; color: #1f2328; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; } h2 { font-size: 1.05rem; margin: 1.8rem 0 .3rem; }
.notice { background: #fff8c5; border: 1px solid #d4a72c; padding: .5rem .8rem; border-radius: 4px; max-width: 60rem; }
.score { font-variant-numeric: tabular-nums; font-weight: bold; }
table.side { border-collapse: collapse; width: 100%; table-layout: fixed; margin: .4rem 0 1rem; }
table.side td, table.side th { border: 1px solid #d0d7de; vertical-align: top; padding: 0; text-align: left; }
table.side th { background: #f6f8fa; padding: 3px 6px; font-weight: normal; overflow-wrap: anywhere; }
pre { margin: 0; padding: 4px 6px; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
mark { background: #ffd8b5; } .more { color: #59636e; }
ol.pairs li { margin: .15rem 0; }
"""
MAX_LINES = 40


def _cell_html(pair: Pair, side: Fingerprinted, cell: int) -> str:
    covered = pair.lines(side, cell)
    lines = side.sources.get(cell, "").splitlines()
    shown = []
    for number, line in enumerate(lines[:MAX_LINES], start=1):
        text = html.escape(line) or " "
        shown.append(f"<mark>{text}</mark>" if number in covered and line.strip() else text)
    more = f'\n<span class="more">... {len(lines) - MAX_LINES} more lines</span>' if len(lines) > MAX_LINES else ""
    return "<pre>" + "\n".join(shown) + more + "</pre>"


def to_html(result: Similarity, max_pairs: int = 40) -> str:
    esc = html.escape
    short = _short_names(result)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
             f"<title>Shared code</title><style>{_STYLE}</style></head><body>",
             "<h1>Shared code between hand-ins</h1>", f'<p class="notice">{esc(NOTICE)}</p>',
             f"<p>{len(result.notebooks)} notebooks; {len(result.pairs)} pairs share unusual code. Score: the "
             "share of the smaller notebook's unusual fingerprints found in the other. Code in more than "
             f"{result.common_limit} notebooks" + (", and the templates' code" if result.templates else "") +
             " does not count. Highlighted lines hold shared fingerprints (variables may be renamed).</p>"]
    if result.pairs:
        parts.append('<ol class="pairs">' + "".join(
            f'<li><a href="#pair-{i}"><span class="score">{p.score:.2f}</span></a> {esc(short[p.a.label])} &harr; '
            f"{esc(short[p.b.label])}</li>" for i, p in enumerate(result.pairs[:max_pairs], start=1)) + "</ol>")
    for i, pair in enumerate(result.pairs[:max_pairs], start=1):
        parts.append(f'<h2 id="pair-{i}">{i}. <span class="score">{pair.score:.2f}</span> &mdash; '
                     f"{len(pair.shared)} shared fingerprints ({pair.share_a:.0%} of the first, "
                     f"{pair.share_b:.0%} of the second)</h2>")
        parts.append(f'<table class="side"><tr><th title="{esc(pair.a.label)}">{esc(short[pair.a.label])}</th>'
                     f'<th title="{esc(pair.b.label)}">{esc(short[pair.b.label])}</th></tr>')
        for ca, cb, n in pair.cell_pairs():
            parts.append(f"<tr><th>cell {ca} ({n} shared)</th><th>cell {cb}</th></tr>"
                         f"<tr><td>{_cell_html(pair, pair.a, ca)}</td><td>{_cell_html(pair, pair.b, cb)}</td></tr>")
        parts.append("</table>")
    if len(result.pairs) > max_pairs:
        parts.append(f"<p>{len(result.pairs) - max_pairs} more pairs: see --format csv.</p>")
    for nb in result.unreadable:
        parts.append(f"<p>unreadable: {esc(nb.error or '')}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render(result: Similarity, fmt: str) -> str:
    return {"text": to_text, "json": to_json, "csv": to_csv, "html": to_html}[fmt](result)

