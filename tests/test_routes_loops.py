"""Loop safety by construction: no object a route writes is ever taken as a source, for any table start-up accepts.

The property generates route tables from a small alphabet of literals, so that outputs and sources collide often:
outputs inside source folders, sources starting with a capture, output segments mixing literals and placeholders,
custom `names`.
For every table `check_table` accepts, names under any output (captures and stems drawn to look like other
routes' literals) are classified as `Skip("object matches no route")`, exactly as the function would.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, event, find, given, settings
from hypothesis import strategies as st

from image_pipeline.errors import ConfigurationError
from image_pipeline.options import ImagingOptions, OutputFormat, Variant
from image_pipeline.output_names import DEFAULT_NAMES, Names
from image_pipeline.routes import (
    CAPTURE_VALUE,
    STEM,
    Pattern,
    Route,
    Template,
    check_table,
    clean_stem,
)
from image_pipeline.settings import Settings
from image_pipeline.uploads import Skip, Upload, classify

# Literal segments a match may use; the ones without a dot are also capture values, stems and variant-free folders.
LITERALS = ("a", "b", "raw", "out", "x-1", "u_2", "a.b", "v.1")
CAPTURE_LIKE = tuple(literal for literal in LITERALS if CAPTURE_VALUE.fullmatch(literal))
CAPTURE_NAMES = ("uid", "id", "p", "q")
VARIANTS = (Variant("thumb", 256), Variant("x-1", 64), Variant("a", 1024))
# A name is one segment whatever its template: loop safety holds for custom names as for the default.
NAMES = (DEFAULT_NAMES, Names.parse("{stem}_{box}.{ext}"), Names.parse("{stem}.{variant}.{ext}"))


@st.composite
def match_segments(draw: st.DrawFn) -> list[str]:
    """A valid match pattern's segments: literals and unique captures, then the {file} capture."""
    names = draw(st.permutations(CAPTURE_NAMES))
    kinds = draw(st.lists(st.booleans(), max_size=4))
    return [
        f"{{{names[i]}}}" if is_capture else draw(st.sampled_from(LITERALS)) for i, is_capture in enumerate(kinds)
    ] + ["{file}"]


def output_segment(placeholders: list[str]) -> st.SearchStrategy[str]:
    """One output folder segment: a literal, a placeholder, or literals and placeholders mixed."""
    placeholder = st.sampled_from(placeholders).map(lambda name: f"{{{name}}}")
    affix = st.sampled_from(("", "v", "x-", "-1", "_", ".d", "a.", "raw"))
    return st.one_of(
        st.sampled_from(LITERALS),
        placeholder,
        st.tuples(affix, placeholder, affix).map("".join),
        st.tuples(placeholder, placeholder).map("".join),
    )


@st.composite
def output_folders(draw: st.DrawFn, own: list[str], matches: list[list[str]]) -> str:
    """An output folder for a route whose match is `own`: random, or another match's folders plus or minus a tail."""
    placeholders = [segment[1:-1] for segment in own[:-1] if segment.startswith("{")] + [STEM]
    segment = output_segment(placeholders)
    if draw(st.booleans()):
        folders = draw(st.lists(segment, min_size=1, max_size=5))
    else:
        # Inside (or equal to) a source folder: another match's folders, each capture replaced by one of ours.
        model = draw(st.sampled_from(matches))[:-1]
        kept = [draw(segment) if part.startswith("{") else part for part in model]
        folders = kept[: draw(st.integers(0, len(kept)))] + draw(st.lists(segment, max_size=2))
        if not folders:
            folders = [draw(segment)]
    return "/".join(folders) + "/"


@st.composite
def route_tables(draw: st.DrawFn) -> tuple[Route, ...]:
    """One to three routes, each valid on its own (the table as a whole may loop)."""
    matches = draw(st.lists(match_segments(), min_size=1, max_size=3))
    return tuple(
        Route(
            name=f"r{index}",
            match=Pattern.parse("/".join(segments)),
            document=Template("docs/{stem}"),
            field="manifest",
            output=Template(draw(output_folders(segments, matches))),
            imaging=ImagingOptions(variants=VARIANTS),
            names=draw(st.sampled_from(NAMES)),
        )
        for index, segments in enumerate(matches)
    )


def written_name(draw: st.DrawFn, route: Route, table: tuple[Route, ...]) -> str:
    """A name the function could write under `route`'s output: captures and stems as events could give them.

    Values are drawn mostly from the table's own literals: those are the ones that could make an output fit a match.
    """
    literals = sorted({part for other in table for part in other.match.segments if CAPTURE_VALUE.fullmatch(part)})
    likely = st.sampled_from(literals or CAPTURE_LIKE)
    value = st.one_of(likely, likely, st.sampled_from(CAPTURE_LIKE), st.from_regex(CAPTURE_VALUE, fullmatch=True))
    captures = {name: draw(value) for name in route.match.captures[:-1] if name is not None}
    stem = draw(st.one_of(value, st.text(max_size=80).map(clean_stem)))
    folder = route.output.render({**captures, STEM: stem})
    variant = draw(st.sampled_from(route.imaging.variants))
    extension = draw(st.sampled_from([output_format.extension for output_format in OutputFormat]))
    return folder + route.names.render(stem, draw(st.integers(1, 2**63 - 1)), variant, extension)


def accepted(table: tuple[Route, ...]) -> bool:
    try:
        check_table(table)
    except ConfigurationError:
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=route_tables(), data=st.data())
def test_no_output_of_an_accepted_table_is_ever_a_source(table: tuple[Route, ...], data: st.DataObject) -> None:
    if not accepted(table):
        event("refused")
        return
    event("accepted")
    configured = dataclasses.replace(Settings(), routes=table)
    for writer in table:
        for _ in range(4):
            name = written_name(data.draw, writer, table)
            resource = {"bucket": "b", "name": name, "generation": "1", "size": "1"}

            assert classify("e", None, resource, configured.routes) == Skip("object matches no route"), (writer, name)


TRICKY = {
    "an output inside a source folder": lambda table: any(
        writer.output.text.startswith(reader.match.literal_prefix) and reader.match.literal_prefix
        for writer in table
        for reader in table
    ),
    "a source starting with a capture": lambda table: any(route.match.captures[0] is not None for route in table),
    "a literal and a placeholder in one output segment": lambda table: any(
        "{" in segment and not (segment.startswith("{") and segment.endswith("}"))
        for route in table
        for segment in route.output.text.split("/")
    ),
}


@pytest.mark.parametrize("shape", TRICKY)
def test_the_generator_reaches_accepted_tables_of_each_tricky_shape(shape: str) -> None:
    found = find(
        route_tables(), lambda table: accepted(table) and TRICKY[shape](table), settings=settings(database=None)
    )

    check_table(found)


def route(name: str, match: str, output: str, document: str = "docs/{stem}") -> Route:
    return Route(name, Pattern.parse(match), Template(document), "manifest", Template(output), ImagingOptions())


# Each loop comes with a name one of its routes would write and another would take as a source: the refusal is needed.
LOOPY = [
    pytest.param((route("s", "in/{uid}/{file}", "in/{uid}/"),), "in/u1/pic-1-thumb.webp", id="output-is-the-source"),
    pytest.param((route("s", "in/{uid}/{file}", "in/t/"),), "in/t/pic-1-thumb.webp", id="literal-fits-a-capture"),
    pytest.param(
        (route("s", "in/{uid}/{file}", "in/v{uid}/"),), "in/vu1/pic-1-thumb.webp", id="literal-plus-placeholder"
    ),
    pytest.param((route("s", "in/{uid}/{file}", "in/{stem}/"),), "in/pic/pic-1-thumb.webp", id="stem-folder"),
    pytest.param(
        (route("s", "{uid}/{file}", "thumbs/"),), "thumbs/pic-1-thumb.webp", id="source-starts-with-a-capture"
    ),
    pytest.param(
        (route("s", "in/{uid}/{file}", "{uid}/{uid}/"),), "in/in/pic-1-thumb.webp", id="capture-equals-literal"
    ),
    pytest.param(
        (route("s", "a/{uid}/{file}", "b/{uid}/"), route("t", "b/{id}/{file}", "c/{id}/", "docs/{id}")),
        "b/u1/pic-1-thumb.webp",
        id="into-another-route",
    ),
    pytest.param(
        (route("s", "a/{uid}/{file}", "o/{uid}/x/"), route("t", "{p}/{q}/{r}/{file}", "p/", "docs/{q}")),
        "o/u1/x/pic-1-thumb.webp",
        id="into-an-all-capture-route",
    ),
]


@pytest.mark.parametrize(("table", "witness"), LOOPY)
def test_a_loopy_table_is_refused_and_would_have_looped(table: tuple[Route, ...], witness: str) -> None:
    with pytest.raises(ConfigurationError, match="would trigger the function again"):
        check_table(table)
    unchecked = dataclasses.replace(Settings(), routes=table)  # what running without the check would mean
    resource = {"bucket": "b", "name": witness, "generation": "1", "size": "1"}

    assert any(writer.output.as_pattern().match(witness) for writer in table)
    assert isinstance(classify("e", None, resource, unchecked.routes), Upload)


@pytest.mark.parametrize(
    "table",
    [
        pytest.param((route("s", "in/{uid}/{file}", "in/{uid}/thumbs/"),), id="deeper-inside-the-source-folder"),
        pytest.param((route("s", "in/{uid}/{file}", "in/"),), id="shallower-inside-the-source-folder"),
        pytest.param((route("s", "in/{uid}/{file}", "in/{uid}.d/"),), id="dot-where-a-capture-takes-none"),
        pytest.param((route("s", "{uid}/{file}", "a/b/"),), id="capture-source-and-deeper-output"),
        pytest.param(
            (route("s", "a/{uid}/{file}", "b/x/{uid}/"), route("t", "b/{id}/{file}", "c/{id}/", "docs/{id}")),
            id="another-routes-folder-but-deeper",
        ),
        pytest.param((Settings().routes[0],), id="built-in"),
    ],
)
def test_outputs_that_can_never_be_sources_are_accepted(table: tuple[Route, ...]) -> None:
    check_table(table)
