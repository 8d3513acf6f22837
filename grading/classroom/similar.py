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
4. fingerprints of the course's own notebooks (``--template``) are dropped. Course code is spread across the
   class in pieces, a shared solution is shared whole by the same few notebooks: so a fingerprint found in
   more than max(3, 10%) of the class is dropped as common *unless* the exact set of notebooks holding it
   (no more than half the class) holds at least GROUP_MIN_SHARED fingerprints that no other notebook has;
5. a pair's share is its shared fingerprints over the smaller notebook's count (1.0: all of the smaller
   notebook's unusual code is also in the other). A small notebook reaches a high share with little code,
   so pairs are ranked by the share weighted by the amount shared (full weight from FULL_WEIGHT_SHARED
   fingerprints, about as many lines); each pair also reports the lines shared and the longest shared run;
6. notebooks that share most of their code with each other are reported as a group as well as in pairs.

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
GROUP_MIN_SHARED = 24   # fingerprints a set of notebooks must hold alone to count as sharing code whole
MIN_SHARE = 0.25        # list pairs from this share up
MIN_SHARED = 8          # fewer shared fingerprints than this is chance, whatever the share
FULL_WEIGHT_SHARED = 60  # a pair ranks at its full share from this many shared fingerprints (~ lines) up
GROUP_SHARE = 0.5       # notebooks in a group share at least this share of the smallest one's code
NOTICE = ("Shared code is a reason to look, not a finding: students may share a public source, "
          "the course's own code (pass it with --template), or work they were allowed to do together. "
          "Read the cells side by side before concluding anything.")

_MAGIC = re.compile(r"^\s*(?:[!%?]|\w+\s*=\s*!)")
_FALLBACK = re.compile(r"#[^\n]*|\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'"
                       r"|\d[\w.]*|[A-Za-z_]\w*|\n|\S")
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
# everyone's imports read alike once names are normalised: they are never shown as shared
_IMPORT = re.compile(r"^\s*(?:import\s|from\s+\S+\s+import\s)")


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


def covered_lines(side: Fingerprinted, shared: set[int]) -> dict[int, set[int]]:
    """Cell -> the lines (1-based within the cell) inside shared fingerprints, import lines left out."""
    covered: dict[int, set[int]] = defaultdict(set)
    for value in shared:
        for cell, first, last in side.prints[value]:
            covered[cell].update(range(first, last + 1))
    for cell, lines in covered.items():
        source = side.sources.get(cell, "").splitlines()
        lines.difference_update({n for n in lines if n > len(source) or not source[n - 1].strip()
                                 or _IMPORT.match(source[n - 1])})
    return covered


def longest_run(covered: dict[int, set[int]], side: Fingerprinted) -> int:
    """The most consecutive shared lines in one cell (blank lines inside a run do not break it)."""
    best = 0
    for cell, lines in covered.items():
        source = side.sources.get(cell, "").splitlines()
        run = 0
        for number, text in enumerate(source, start=1):
            if number in lines:
                run += 1
                best = max(best, run)
            elif text.strip():
                run = 0
    return best


@dataclass
class Pair:
    a: Fingerprinted
    b: Fingerprinted
    shared: set[int]
    share: float                 # shared over the smaller notebook's unusual fingerprints
    share_a: float
    share_b: float
    score: float = 0.0           # the share weighted by the amount shared: what pairs are ranked by
    shared_lines: int = 0        # lines of the smaller notebook inside shared code
    longest_run: int = 0         # the longest run of shared lines in one of its cells

    def __post_init__(self) -> None:
        self.score = self.share * min(1.0, len(self.shared) / FULL_WEIGHT_SHARED)
        smaller = self.a if self.share_a >= self.share_b else self.b
        covered = covered_lines(smaller, self.shared)
        self.shared_lines = sum(len(lines) for lines in covered.values())
        self.longest_run = longest_run(covered, smaller)

    def cell_pairs(self, limit: int = 6) -> list[tuple[int, int, int]]:
        """(cell in a, cell in b, fingerprints they share), most first; each cell once (a notebook that repeats
        its own code would otherwise show the same cell beside several)."""
        counts: Counter = Counter()
        for value in self.shared:
            for ca in {c for c, _, _ in self.a.prints[value]}:
                for cb in {c for c, _, _ in self.b.prints[value]}:
                    counts[(ca, cb)] += 1
        chosen, seen_a, seen_b = [], set(), set()
        for (ca, cb), n in counts.most_common():
            if ca in seen_a or cb in seen_b:
                continue
            chosen.append((ca, cb, n))
            seen_a.add(ca)
            seen_b.add(cb)
            if len(chosen) == limit:
                break
        return chosen

    def lines(self, side: Fingerprinted, cell: int) -> set[int]:
        """The lines of ``cell`` covered by shared fingerprints (1-based within the cell), imports left out."""
        return covered_lines(side, {v for v in self.shared if any(c == cell for c, _, _ in side.prints[v])}).get(
            cell, set())

    def as_dict(self) -> dict:
        return {"a": self.a.label, "b": self.b.label, "score": round(self.score, 4), "share": round(self.share, 4),
                "shared_fingerprints": len(self.shared), "shared_lines": self.shared_lines,
                "longest_run": self.longest_run, "share_a": round(self.share_a, 4),
                "share_b": round(self.share_b, 4),
                "cells": [{"a": ca, "b": cb, "shared": n} for ca, cb, n in self.cell_pairs()]}


@dataclass
class Group:
    """Three or more notebooks that share most of their code with each other (a copy passed around)."""
    members: list[Fingerprinted]
    shared: int                  # unusual fingerprints every member holds
    share: float                 # that over the smallest member's unusual fingerprints

    def as_dict(self) -> dict:
        return {"notebooks": [m.label for m in self.members], "shared_fingerprints": self.shared,
                "share": round(self.share, 4)}


@dataclass
class Similarity:
    notebooks: list[Fingerprinted]
    pairs: list[Pair]
    common_limit: int
    templates: list[str]
    groups: list[Group] = field(default_factory=list)

    @property
    def unreadable(self) -> list[Fingerprinted]:
        return [n for n in self.notebooks if n.error]

    @property
    def readable(self) -> int:
        return len(self.notebooks) - len(self.unreadable)


def unusual_fingerprints(holders: dict[int, list[int]], class_size: int, limit: int) -> set[int]:
    """Fingerprints held by at most ``limit`` notebooks, and those held whole by the same few notebooks.

    Above the limit a fingerprint is course code when its holders vary from piece to piece; it is a shared
    solution when one exact set of notebooks (at most half the class) holds GROUP_MIN_SHARED of them."""
    cap = max(limit, class_size // 2)
    by_set: dict[tuple[int, ...], list[int]] = defaultdict(list)
    unusual = set()
    for value, who in holders.items():
        if len(who) <= limit:
            unusual.add(value)
        elif len(who) <= cap:
            by_set[tuple(who)].append(value)
    for values in by_set.values():
        if len(values) >= GROUP_MIN_SHARED:
            unusual.update(values)
    return unusual


def find_groups(readable: list[Fingerprinted], pairs: list[Pair], own_prints: list[set[int]],
                index: dict[int, int]) -> list[Group]:
    """Connected sets of three or more notebooks whose pairs each share at least GROUP_SHARE, kept when every
    member holds GROUP_SHARE of the smallest member's unusual code."""
    parent = {i: i for i in range(len(readable))}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for pair in pairs:
        if pair.share >= GROUP_SHARE:
            parent[root(index[id(pair.a)])] = root(index[id(pair.b)])
    components: dict[int, list[int]] = defaultdict(list)
    for i in range(len(readable)):
        components[root(i)].append(i)
    groups = []
    for members in components.values():
        if len(members) < 3:
            continue
        common = set.intersection(*(own_prints[i] for i in members))
        smallest = min(len(own_prints[i]) for i in members)
        share = len(common) / smallest if smallest else 0.0
        if share >= GROUP_SHARE:
            groups.append(Group([readable[i] for i in members], len(common), share))
    groups.sort(key=lambda g: (-len(g.members), -g.share))
    return groups


def similar_notebooks(paths: list[str], templates: list[str] = (), k: int = K, window: int = WINDOW,
                      min_share: float = MIN_SHARE, min_shared: int = MIN_SHARED, jobs: int | None = None) -> Similarity:
    """Rank the pairs of notebooks under PATHs by their (amount-weighted) share of unusual fingerprints."""
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
    unusual = unusual_fingerprints(holders, len(readable), limit)
    own_prints = [{v for v in nb.prints if v in unusual} for nb in readable]
    own = [len(p) for p in own_prints]
    shared: dict[tuple[int, int], set[int]] = defaultdict(set)
    for value in unusual:
        for i, j in combinations(holders[value], 2):
            shared[(i, j)].add(value)
    pairs = []
    for (i, j), values in shared.items():
        if len(values) < min_shared:
            continue
        share_a, share_b = len(values) / own[i], len(values) / own[j]
        share = max(share_a, share_b)
        if share >= min_share:
            pairs.append(Pair(readable[i], readable[j], values, share, share_a, share_b))
    pairs.sort(key=lambda p: (-p.score, -len(p.shared), p.a.label, p.b.label))
    index = {id(nb): i for i, nb in enumerate(readable)}
    return Similarity(notebooks, pairs, limit, list(templates), find_groups(readable, pairs, own_prints, index))


# --- reports -----------------------------------------------------------------------------------------

def _short_names(result: Similarity) -> dict[str, str]:
    """Labels relative to the folder (or zip) all notebooks sit in, for people to read."""
    labels = [nb.label for nb in result.notebooks]
    try:
        folder = os.path.commonpath([os.path.dirname(label) or "." for label in labels]) if labels else ""
    except ValueError:
        folder = ""
    return {label: os.path.relpath(label, folder) if folder else label for label in labels}


def _context(result: Similarity) -> str:
    return (f"{result.readable} notebooks; code in more than {result.common_limit} of them counts as common unless "
            "the same few notebooks share it whole" +
            (f"; templates: {', '.join(result.templates)}" if result.templates else "; no templates given"))


def _group_line(group: Group, short: dict[str, str]) -> str:
    return (f"{len(group.members)} notebooks share {group.share:.0%} of their unusual code "
            f"({group.shared} fingerprints): " + ", ".join(short[m.label] for m in group.members))


def to_text(result: Similarity) -> str:
    short = _short_names(result)
    lines = [NOTICE, "", _context(result)]
    if result.groups:
        lines.append(f"{len(result.groups)} group{'s' if len(result.groups) != 1 else ''} of three or more:")
        lines += [f"  {_group_line(g, short)}" for g in result.groups]
    lines.append(f"{len(result.pairs)} pairs share unusual code (score = share of the smaller notebook's "
                 f"fingerprints, weighted down below {FULL_WEIGHT_SHARED} shared ones)")
    for pair in result.pairs:
        cells = ", ".join(f"cell {ca} ~ cell {cb}" for ca, cb, _ in pair.cell_pairs(3))
        lines.append(f"  {pair.score:5.2f}  {short[pair.a.label]}  <->  {short[pair.b.label]}  (share "
                     f"{pair.share:.2f}; {pair.shared_lines} lines shared, longest run {pair.longest_run}; {cells})")
    lines += [f"unreadable: {nb.error}" for nb in result.unreadable]
    return "\n".join(lines) + "\n"


def to_json(result: Similarity) -> str:
    return json.dumps({"notebooks": result.readable, "unreadable": [nb.error for nb in result.unreadable],
                       "common_cutoff": result.common_limit, "templates": result.templates,
                       "groups": [g.as_dict() for g in result.groups],
                       "pairs": [p.as_dict() for p in result.pairs]}, indent=2, ensure_ascii=False) + "\n"


def to_csv(result: Similarity) -> str:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["a", "b", "score", "share", "shared_fingerprints", "shared_lines", "longest_run", "share_a",
                     "share_b", "cells"])
    for pair in result.pairs:
        d = pair.as_dict()
        writer.writerow([d["a"], d["b"], d["score"], d["share"], d["shared_fingerprints"], d["shared_lines"],
                         d["longest_run"], d["share_a"], d["share_b"],
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
CONTEXT_LINES = 2


def _cell_html(pair: Pair, side: Fingerprinted, cell: int) -> str:
    """The cell's shared lines, wherever they are, with two lines around each run; the rest elided."""
    covered = pair.lines(side, cell)
    lines = side.sources.get(cell, "").splitlines()
    keep = {n for c in covered for n in range(c - CONTEXT_LINES, c + CONTEXT_LINES + 1) if 1 <= n <= len(lines)}
    shown, skipped = [], 0
    for number, line in enumerate(lines, start=1):
        if number not in keep:
            skipped += 1
            continue
        if skipped:
            shown.append(f'<span class="more">... {skipped} line{"s" if skipped != 1 else ""} not shared</span>')
            skipped = 0
        text = html.escape(line) or " "
        shown.append(f"<mark>{text}</mark>" if number in covered else text)
    if skipped:
        shown.append(f'<span class="more">... {skipped} line{"s" if skipped != 1 else ""} not shared</span>')
    return "<pre>" + "\n".join(shown) + "</pre>"


def to_html(result: Similarity, max_pairs: int = 40) -> str:
    esc = html.escape
    short = _short_names(result)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
             f"<title>Shared code</title><style>{_STYLE}</style></head><body>",
             "<h1>Shared code between hand-ins</h1>", f'<p class="notice">{esc(NOTICE)}</p>',
             (f"<p>{esc(_context(result))}. {len(result.pairs)} pairs share unusual code. Share: the part of the "
              "smaller notebook's unusual fingerprints found in the other; the score ranks pairs by it, weighted "
              f"down where fewer than {FULL_WEIGHT_SHARED} fingerprints are shared. Highlighted lines hold shared "
              "code (variables may be renamed; import lines are never highlighted); lines far from shared code "
              "are left out.</p>")]
    if result.groups:
        parts.append("<h2>Groups</h2><ul>" + "".join(f"<li>{esc(_group_line(g, short))}</li>"
                                                    for g in result.groups) + "</ul>")
    if result.pairs:
        parts.append('<ol class="pairs">' + "".join(
            f'<li><a href="#pair-{i}"><span class="score">{p.score:.2f}</span></a> {esc(short[p.a.label])} &harr; '
            f"{esc(short[p.b.label])} (share {p.share:.2f}, {p.shared_lines} lines, longest run "
            f"{p.longest_run})</li>" for i, p in enumerate(result.pairs[:max_pairs], start=1)) + "</ol>")
    for i, pair in enumerate(result.pairs[:max_pairs], start=1):
        parts.append(f'<h2 id="pair-{i}">{i}. <span class="score">{pair.score:.2f}</span> &mdash; '
                     f"{len(pair.shared)} shared fingerprints ({pair.share_a:.0%} of the first, "
                     f"{pair.share_b:.0%} of the second), {pair.shared_lines} lines, longest run "
                     f"{pair.longest_run} lines</h2>")
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
