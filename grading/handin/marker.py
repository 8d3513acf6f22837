"""Regular expressions that skip, at memchr speed, the text they cannot match.

Python's ``re`` tries a pattern at every position of the text when the pattern starts with ``\\b`` or
with an alternation of words (``\\bplt\\.plot\\s*\\(|\\.plot\\s*\\(``): about 100 ns a character. The
detectors search every code cell of a notebook, and every helper body, with a dozen such markers. On a
real-sized hand-in (100 code cells) that was a third of the grader's time. A ``Marker`` names plain words,
one of which is in every match, and runs its regex only on text that holds one of them: a substring test
costs about as little as nothing.

tests/test_grading_markers.py checks, from each pattern's syntax, that every match holds one of its words.
"""
from __future__ import annotations

import re
from collections.abc import Iterator


class Marker:
    """``re.Pattern``'s search, finditer and findall, with a cheap test first."""

    def __init__(self, pattern: str, words: tuple[str, ...], flags: int = 0):
        if not words:
            raise ValueError(f"a Marker needs at least one word every match holds: {pattern!r}")
        if flags & re.IGNORECASE:
            raise ValueError("a Marker's words are tested case-sensitively: use a plain re.Pattern instead")
        self.regex = re.compile(pattern, flags)
        self.words = words

    @property
    def pattern(self) -> str:
        return self.regex.pattern

    def could_match(self, text: str) -> bool:
        for word in self.words:   # (a plain loop: a generator costs more than the tests themselves)
            if word in text:
                return True
        return False

    def search(self, text: str) -> re.Match | None:
        return self.regex.search(text) if self.could_match(text) else None

    def finditer(self, text: str) -> Iterator[re.Match]:
        return self.regex.finditer(text) if self.could_match(text) else iter(())

    def findall(self, text: str) -> list:
        return self.regex.findall(text) if self.could_match(text) else []

    def or_(self, pattern: str, words: tuple[str, ...]) -> Marker:
        """This marker or another pattern (with the words that one's matches hold)."""
        return Marker(f"{self.pattern}|{pattern}", self.words + words, self.regex.flags)

    def __repr__(self) -> str:
        return f"Marker({self.pattern!r}, {self.words!r})"
