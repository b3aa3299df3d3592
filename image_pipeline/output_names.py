"""Output file names: a route's `names` template, the name of each variant in each format, and the start-up checks
that no two outputs could get one name. Standard library only.

A name is one path segment: folders belong to the route's `output`. So an output is always its folder plus one file
name, which keeps loop safety (the depth of an output is its folder's plus one), the storage rules (one rule per output
folder) and prune (an object read back to its folder, then its file name) exactly as they are for every route.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from image_pipeline.options import OutputFormat, Variant

STEM, GENERATION, VARIANT, BOX, EXT = "stem", "generation", "variant", "box", "ext"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LITERAL = re.compile(r"[A-Za-z0-9_.-]*")
# What each placeholder can be in a stored name: any stem, generation, variant name, box or format, so that outputs
# of variants or formats a route no longer makes are still read as its own (prune).
_VALUES = {
    STEM: "[A-Za-z0-9_-]{1,64}",
    GENERATION: "[0-9]{1,20}",
    VARIANT: "[a-z][a-z0-9_-]{0,31}",
    BOX: "[1-9][0-9]{0,4}x[1-9][0-9]{0,4}",
    EXT: "[a-z0-9]+",
}
# The characters a capture value or a stem is made of, and those of a generation: what a collision check lets a
# placeholder of a folder or a name stand for.
VALUE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_DIGITS = frozenset("0123456789")
# The characters an example name is spelled with, most readable first.
_EXAMPLE_CHARS = "abcdefghijklmnopqrstuvwxyz1234567890ABCDEFGHIJKLMNOPQRSTUVWXYZ_-"

# A name's possible spellings for collision checks: each item one character, or a run of 1 or more of a set.
Shape = tuple[str | frozenset[str], ...]
# Where the reading of two shapes is: how far into each, and whether inside a run of it.
_State = tuple[int, bool, int, bool]


@dataclass(frozen=True)
class Names:
    """A route's output file names: a template of {stem}, {generation}, {variant}, {box} and {ext}."""

    text: str

    @classmethod
    def parse(cls, text: str) -> Names:
        """Validate a `names` template; ValueError says what is wrong."""
        if "/" in text:
            raise ValueError("a file name, without '/': folders belong in output, which may use the captures")
        placeholders = _PLACEHOLDER.findall(text)
        unknown = [name for name in placeholders if name not in _VALUES]
        if unknown:
            known = ", ".join(f"{{{name}}}" for name in _VALUES)
            raise ValueError(f"unknown placeholder {{{unknown[0]}}} (known: {known})")
        if len(set(placeholders)) != len(placeholders):
            raise ValueError("each placeholder may appear once")
        if not _LITERAL.fullmatch(_PLACEHOLDER.sub("", text)):
            raise ValueError("the text around the placeholders must be A-Z a-z 0-9 _ . -")
        if not text.endswith(".{ext}"):
            raise ValueError("must end in '.{ext}': the format's extension, which tells the outputs' formats apart")
        if VARIANT not in placeholders and BOX not in placeholders:
            raise ValueError("must name the variant: {variant}, or {box} (its WxH) when no two variants share a box")
        return cls(text)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The names between braces, in order."""
        return tuple(_PLACEHOLDER.findall(self.text))

    @property
    def has_generation(self) -> bool:
        """Whether a new upload gets new names; without {generation}, it overwrites the outputs of the one before."""
        return GENERATION in self.placeholders

    @property
    def has_stem(self) -> bool:
        """Whether the names say which upload (by its stem) they were made from."""
        return STEM in self.placeholders

    def render(self, stem: str, generation: int, variant: Variant, extension: str) -> str:
        """The file name of one variant in one format."""
        values = {STEM: stem, GENERATION: str(generation), VARIANT: variant.name, BOX: box(variant), EXT: extension}
        return _PLACEHOLDER.sub(lambda found: values[found.group(1)], self.text)

    def could_make(self, file_name: str) -> bool:
        """Whether some stem, generation, variant name, box and format render to `file_name`."""
        return _whole(self.text).fullmatch(file_name) is not None

    def stems(self, file_name: str) -> tuple[str, ...]:
        """Every stem `file_name` can have been rendered with (several when a stem could hold what follows it)."""
        before, found, after = self.text.partition(f"{{{STEM}}}")
        if not found:
            return ()
        head, tail, stem = _whole(before), _whole(after), re.compile(_VALUES[STEM])
        ends = [end for end in range(len(file_name) + 1) if head.fullmatch(file_name, 0, end)]
        starts = [start for start in range(len(file_name) + 1) if tail.fullmatch(file_name, start)]
        return tuple(file_name[end:start] for end in ends for start in starts if stem.fullmatch(file_name, end, start))

    def shape(self, variant: Variant, extension: str) -> Shape:
        """The spellings of one variant's name in one format, for any stem and generation."""
        runs = {STEM: VALUE_CHARS, GENERATION: _DIGITS}
        fixed = {VARIANT: variant.name, BOX: box(variant), EXT: extension}
        shape: list[str | frozenset[str]] = []
        for index, piece in enumerate(_PLACEHOLDER.split(self.text)):
            # split() alternates literal text and placeholder names.
            if index % 2 == 0 or piece in fixed:
                shape.extend(piece if index % 2 == 0 else fixed[piece])
            else:
                shape.append(runs[piece])
        return tuple(shape)

    def check(self, variants: Sequence[Variant], formats: Sequence[OutputFormat]) -> None:
        """Refuse names that could give two outputs one name; ValueError says which variants.

        Names of one upload differ when the one placeholder that tells variants apart differs. Without {generation},
        names of different uploads must differ too (or be made for the same upload's stem), so every pair of outputs
        is compared over all stems; so are names with both {variant} and {box}, which are compared as a pair.
        """
        if VARIANT not in self.placeholders:
            for first, second in _pairs(variants):
                if box(first) == box(second):
                    raise ValueError(
                        f"names: variants {first.name!r} and {second.name!r} have the same box {box(first)}, and "
                        "{box} is all that tells them apart: add {variant}"
                    )
        if self.has_generation and not {VARIANT, BOX} <= set(self.placeholders):
            return
        for output_format in formats:
            for first, second in _pairs(variants):
                extension = output_format.extension
                name = common_name(self.shape(first, extension), self.shape(second, extension))
                if name is not None:
                    raise ValueError(
                        f"names: the {output_format.value} outputs of variants {first.name!r} and {second.name!r} "
                        f"could both be named {name!r}: rename a variant, or put a '.' between the placeholders"
                    )


# The names of every route that sets none: new for every upload, so that a long immutable Cache-Control is safe.
DEFAULT_NAMES = Names("{stem}-{generation}-{variant}.{ext}")


def box(variant: Variant) -> str:
    """`WxH`: the variant's box, as {box} spells it."""
    width, height = variant.box
    return f"{width}x{height}"


def common_name(first: Shape, second: Shape) -> str | None:
    """A text that fits both shapes, or None when none does: both are read at once, from the end, breadth first.

    A state is how far each shape is read, and whether it is inside a run (which may take more or end). Conservative:
    runs have no upper length, so a text may need a stem longer than 64 characters.
    """
    # From the end: names usually differ in their last characters (the variant, the box), so most pairs part at once.
    first, second = first[::-1], second[::-1]
    start: _State = (0, False, 0, False)
    came_from: dict[_State, tuple[_State, str] | None] = {start: None}
    pending = deque([start])
    while pending:
        state = pending.popleft()
        i, in_first, j, in_second = state
        if (i, j, in_first, in_second) == (len(first), len(second), False, False):
            return _spelled(state, came_from)
        moves: list[tuple[_State, str]] = []
        if in_first:
            moves.append(((i + 1, False, j, in_second), ""))
        if in_second:
            moves.append(((i, in_first, j + 1, False), ""))
        if i < len(first) and j < len(second):
            shared = _shared(first[i], second[j])
            if shared:
                moves.append(((*_after(first, i), *_after(second, j)), shared))
        for following, char in moves:
            if following not in came_from:
                came_from[following] = (state, char)
                pending.append(following)
    return None


def _spelled(state: _State, came_from: dict[_State, tuple[_State, str] | None]) -> str:
    """The characters read on the way to `state`, in the text's order (they were read from its end)."""
    chars = []
    step = came_from[state]
    while step is not None:
        state, char = step
        chars.append(char)
        step = came_from[state]
    return "".join(chars)


def _after(shape: Shape, index: int) -> tuple[int, bool]:
    """Where a shape is read to once its item at `index` has taken one character: inside a run, or past a character."""
    return (index, True) if isinstance(shape[index], frozenset) else (index + 1, False)


def _shared(first: str | frozenset[str], second: str | frozenset[str]) -> str:
    """A character both items could be ("" when none)."""
    if isinstance(first, str):
        return first if first == second or (isinstance(second, frozenset) and first in second) else ""
    if isinstance(second, str):
        return second if second in first else ""
    return next((char for char in _EXAMPLE_CHARS if char in first and char in second), "")


@lru_cache(maxsize=64)  # prune asks for each listed object: build each route's patterns once
def _whole(text: str) -> re.Pattern[str]:
    """What the template (or a part of it) renders to, each placeholder standing for any value of it."""
    pieces = _PLACEHOLDER.split(text)
    return re.compile("".join(re.escape(piece) if i % 2 == 0 else _VALUES[piece] for i, piece in enumerate(pieces)))


def _pairs(variants: Sequence[Variant]) -> Iterator[tuple[Variant, Variant]]:
    return ((first, second) for index, first in enumerate(variants) for second in variants[index + 1 :])
