"""Firebase Security Rules for the configured routes: firestore.rules and storage.rules as text. Standard library only.

Storage: each route's owner (the `owner` capture) uploads under its `match`; a route without an owner takes no
client writes; no client writes under any `output` folder. Firestore: each document a route records results in may
be read and written by its owner (named by a `require` field equal to the owner capture, or by a document path
segment that is the owner capture), except the fields only the function writes: every manifest (`field`) and mirror
field. Documents whose owner the rules cannot tell get no client access.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from image_pipeline.routes import Route, Template

_WIDTH = 120
_MIB = 1024 * 1024
# Names a path variable cannot take: the enclosing matches' variables, and names the rules language gives meaning.
_RESERVED = frozenset(
    {
        "bucket",
        "database",
        "request",
        "resource",
        "true",
        "false",
        "null",
        "if",
        "in",
        "is",
        "let",
        "return",
        "function",
        "match",
        "allow",
        "service",
        "math",
        "timestamp",
        "duration",
        "latlng",
        "hashing",
        "debug",
        "exists",
        "existsAfter",
        "get",
        "getAfter",
        "path",
        "signedIn",
        "isOwner",
        "validId",
        "validImage",
    }
)

FIRESTORE_HEADER = """\
rules_version = '2';

{made_by}
//
// A document a route records results in is owned by the user the route's `owner` names. The owner may read and
// write it, except for the fields only the function (its service account, to which rules do not apply) writes:
// each route's manifest (`field`) and mirror fields. So a client cannot claim a result, point a URL elsewhere or
// spin the UI forever.
//
// Deploying replaces the database's whole ruleset: if the app has other collections (or wants public
// documents, e.g. a read rule on a meta.isPublic flag), merge these match blocks into its rules.
// Deploy: firebase deploy --only firestore:rules   (or ./deploy.sh rules)
service cloud.firestore {
  match /databases/{database}/documents {
    function signedIn() {
      return request.auth != null;
    }
"""

STORAGE_HEADER = """\
rules_version = '2';

{made_by}
//
// Rules govern Firebase client SDK requests only. The function writes with its own service account through
// IAM, which these rules do not apply to, and the download-token URLs it records
// (https://firebasestorage.googleapis.com/...&token=...) are served to anyone holding the token regardless
// of rules: the token is the capability, like an unguessable link.
//
// Deploying replaces the bucket's whole ruleset: if the app stores other paths in this bucket, merge these
// matches into its rules. Deploy: firebase deploy --only storage   (or ./deploy.sh rules)
service firebase.storage {
  match /b/{bucket}/o {
    function signedIn() {
      return request.auth != null;
    }

    function isOwner(uid) {
      return signedIn() && request.auth.uid == uid;
    }

    // The same segment grammar the function accepts; anything else it would skip without processing.
    function validId(id) {
      return id.matches('^[A-Za-z0-9_-]{1,128}$');
    }

    // An image (not SVG: scriptable, and the pipeline cannot rasterise it), not empty, and under the
    // function's MAX_INPUT_BYTES: larger uploads would only be recorded as 'failed'.
    function validImage(maxBytes) {
      return request.resource.size > 0
        && request.resource.size < maxBytes
        && request.resource.contentType.matches('image/.+')
        && !request.resource.contentType.matches('image/svg.*');
    }
"""

FOOTER = """
    // Everything else: no rule matches, so access is denied.
  }
}
"""


@dataclass(frozen=True)
class RulePath:
    """A name pattern as a rules match path: each segment a literal or one `{variable}`."""

    segments: tuple[str, ...]
    variables: tuple[str | None, ...]  # the variable of each segment, None for a literal

    @classmethod
    def of(cls, segments: Sequence[str], route: Route) -> RulePath:
        """Whole-placeholder segments keep their name; a segment mixing text and placeholders is `{segmentN}`."""
        variables: list[str | None] = []
        for index, segment in enumerate(segments):
            names = Template(segment).placeholders()
            if not names:
                variables.append(None)
            elif segment == f"{{{names[0]}}}":
                variables.append(_variable(names[0], route))
            else:
                variables.append(f"segment{index + 1}")
        return cls(tuple(segments), tuple(variables))

    @property
    def shape(self) -> tuple[str | None, ...]:
        """The literal segments, None where any value fits: two paths with one shape name the same objects."""
        return tuple(
            segment if variable is None else None
            for segment, variable in zip(self.segments, self.variables, strict=True)
        )

    def text(self) -> str:
        """`/a/{b}/c` as a match statement takes it."""
        parts = (segment if variable is None else f"{{{variable}}}" for segment, variable in self._pairs())
        return "/" + "/".join(parts)

    def index_of(self, variable: str) -> int | None:
        """The segment holding exactly this variable, if any."""
        return self.variables.index(variable) if variable in self.variables else None

    def _pairs(self) -> Iterable[tuple[str, str | None]]:
        return zip(self.segments, self.variables, strict=True)


def _variable(name: str, route: Route) -> str:
    """A capture as a path variable; ValueError when the rules language would read it as something else."""
    if name in _RESERVED:
        raise ValueError(f"route {route.name!r}: capture {{{name}}} cannot be a rules path variable; rename it")
    return name


def _overlaps(one: tuple[str | None, ...], other: tuple[str | None, ...]) -> bool:
    """Whether some path fits both shapes."""
    return len(one) == len(other) and all(a is None or b is None or a == b for a, b in zip(one, other, strict=False))


def _comment(text: str, indent: int) -> list[str]:
    """`text` as `//` comment lines at this indentation, wrapped to the line length."""
    prefix = " " * indent + "// "
    return textwrap.wrap(text, _WIDTH - len(prefix), initial_indent=prefix, subsequent_indent=prefix)


def _made_by(service: str, routes: Sequence[Route]) -> str:
    """The header's first lines: what made the file, from which routes."""
    text = (
        f"Firebase Security Rules for {service}, made by `python -m image_pipeline rules` from the routes "
        f"({_route_names(routes)}). Change the routes and run it again rather than editing this file."
    )
    return "\n".join(_comment(text, 0))


def _route_names(routes: Sequence[Route]) -> str:
    return ", ".join(route.name for route in routes)


# --- Firestore -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """How rules tell a document's owner: a field equal to the owner capture, or a path variable that is it."""

    field: str | None = None
    variable: str | None = None

    def existing(self) -> str:
        """The owner of the stored document."""
        return f"resource.data.{self.field}" if self.field else str(self.variable)

    def incoming(self) -> str:
        """The owner of the document as the request would leave it."""
        return f"request.resource.data.{self.field}" if self.field else str(self.variable)

    def describe(self) -> str:
        return f"the user in {self.field}" if self.field else f"the user whose uid is {{{self.variable}}}"


@dataclass(frozen=True)
class FunctionField:
    """A document field only the function writes, and the value an app may create it with."""

    path: str
    neutral: str  # the rules literal an absent field counts as: false for the `ready` flag, else null

    @property
    def parent(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def key(self) -> str:
        return self.path.rpartition(".")[2]


@dataclass(frozen=True)
class DocumentRules:
    """One match block: the documents of one path shape, the routes recording there, their owner and fields."""

    path: RulePath
    routes: tuple[Route, ...]
    owner: Owner | None
    fields: tuple[FunctionField, ...]


def function_fields(route: Route) -> tuple[FunctionField, ...]:
    """The manifest and the mirror fields of a route: the fields a client must not write."""
    mirror = route.mirror
    candidates = ((route.field, "null"), (mirror.ready, "false"), (mirror.status, "null"), (mirror.url, "null"))
    return tuple(FunctionField(path, neutral) for path, neutral in candidates if path is not None)


def document_owner(route: Route, path: RulePath) -> Owner | None:
    """How the rules tell the owner of the route's documents, or None when they cannot."""
    if route.owner is None:
        return None
    capture = f"{{{route.owner}}}"
    for field, template in route.require.items():
        if template.text == capture:
            return Owner(field=field)
    index = route.document.text.split("/").index(capture) if capture in route.document.text.split("/") else None
    return None if index is None else Owner(variable=path.variables[index])


def document_rules(routes: Sequence[Route]) -> tuple[DocumentRules, ...]:
    """The routes grouped by the documents they record in; ValueError when the groups cannot be told apart."""
    groups: dict[tuple[str | None, ...], list[tuple[Route, RulePath]]] = {}
    for route in routes:
        path = RulePath.of(route.document.text.split("/"), route)
        groups.setdefault(path.shape, []).append((route, path))
    shapes = list(groups)
    for i, one in enumerate(shapes):
        for other in shapes[i + 1 :]:
            if _overlaps(one, other):
                first, second = groups[one][0][0], groups[other][0][0]
                raise ValueError(
                    f"routes {first.name!r} and {second.name!r}: documents {first.document.text!r} and "
                    f"{second.document.text!r} can be the same document; rules cannot keep them apart"
                )
    return tuple(_group(members) for members in groups.values())


def _group(members: list[tuple[Route, RulePath]]) -> DocumentRules:
    """One match block for routes whose documents have one path shape (named as the first route names them)."""
    path = members[0][1]
    # The same shape may name its variables differently per route: compare owners in the first route's names.
    owners = {_renamed(document_owner(route, route_path), route_path, path) for route, route_path in members}
    if len(owners) > 1:
        names = " and ".join(repr(route.name) for route, _ in members)
        raise ValueError(f"routes {names} record in the same documents but name their owners differently")
    fields: dict[str, FunctionField] = {}
    for route, _ in members:
        fields.update({field.path: field for field in function_fields(route) if field.path not in fields})
    return DocumentRules(path, tuple(route for route, _ in members), owners.pop(), tuple(fields.values()))


def _renamed(owner: Owner | None, route_path: RulePath, path: RulePath) -> Owner | None:
    """An owner named by a path variable of `route_path`, named as `path` (of the same shape) names it."""
    if owner is None or owner.variable is None:
        return owner
    return Owner(variable=path.variables[route_path.variables.index(owner.variable)])


def firestore_rules(routes: Sequence[Route]) -> str:
    """firestore.rules for these routes."""
    lines = [FIRESTORE_HEADER.replace("{made_by}", _made_by("Cloud Firestore", routes))]
    lines.extend("\n".join(_document_block(rules)) + "\n" for rules in document_rules(routes))
    return "\n".join(lines) + FOOTER


def _document_block(rules: DocumentRules) -> list[str]:
    """The comment and the match block of one document group."""
    where = f"{'/'.join(rules.path.segments)}: route{'s' if len(rules.routes) > 1 else ''} {_route_names(rules.routes)}"
    fields = ", ".join(field.path for field in rules.fields)
    if rules.owner is None:
        text = (
            f"{where} record{'' if len(rules.routes) > 1 else 's'} results here. No route names an owner the rules "
            "can tell, so no client may read or write these documents; an app that shows them merges its own "
            f"rules here, keeping clients away from {fields}."
        )
        return [*_comment(text, 4), f"    match {rules.path.text()} {{", "      allow read, write: if false;", "    }"]
    text = (
        f"{where} record{'' if len(rules.routes) > 1 else 's'} results here. Owned by {rules.owner.describe()}, "
        f"who may read and write it except for the fields only the function writes: {fields}."
    )
    return [*_comment(text, 4), f"    match {rules.path.text()} {{", *_field_functions(rules), *_allows(rules), "    }"]


def _parents(fields: Sequence[FunctionField]) -> dict[str, list[FunctionField]]:
    """The function's fields by the map that holds them ('' for the document itself), in first-seen order."""
    parents: dict[str, list[FunctionField]] = {}
    for field in fields:
        parents.setdefault(field.parent, []).append(field)
    return parents


def _helper_name(parent: str) -> str:
    """`visuals` -> `visualsOf`, `a.b_c` -> `aB_cOf`."""
    first, *rest = parent.split(".")
    return first + "".join(part[:1].upper() + part[1:] for part in rest) + "Of"


def _map_of(parent: str, data: str) -> str:
    """The map holding a parent's fields in `data`: the document itself, or the helper's result."""
    return data if not parent else f"{_helper_name(parent)}({data})"


def _field_functions(rules: DocumentRules) -> list[str]:
    """The helpers reading each parent map, and the create/update checks of the function's fields."""
    parents = _parents(rules.fields)
    lines: list[str] = []
    for parent in parents:
        if parent:
            chain = "data" + "".join(f".get('{part}', {{}})" for part in parent.split("."))
            lines += _comment(f"The `{parent}` map of a document, or an empty map when the document has none.", 6)
            lines += [f"      function {_helper_name(parent)}(data) {{", f"        return {chain};", "      }", ""]
    neutral, unchanged = [], []
    for parent, fields in parents.items():
        incoming, existing = _map_of(parent, "request.resource.data"), _map_of(parent, "resource.data")
        if parent:
            neutral.append(f"{incoming} is map")
            unchanged.append(f"{incoming} is map")
        neutral += [f"{incoming}.get('{field.key}', {field.neutral}) == {field.neutral}" for field in fields]
        keys = ", ".join(f"'{field.key}'" for field in fields)
        unchanged.append(f"!{incoming}.diff({existing}).affectedKeys()\n            .hasAny([{keys}])")
    lines += _comment(_NEUTRAL_COMMENT, 6)
    lines += _function("functionFieldsNeutral", neutral)
    lines += _comment(_UNCHANGED_COMMENT, 6)
    lines += _function("functionFieldsUnchanged", unchanged)
    return lines


_NEUTRAL_COMMENT = (
    'On create, the function\'s fields may be absent or hold the neutral "not processed" values an app may '
    "initialise them with; never a status, a URL or a result."
)
_UNCHANGED_COMMENT = (
    "On update, none of the function's fields is added, changed or removed. diff() on the maps that hold them "
    "(empty when absent) also catches a client replacing or deleting a whole map."
)


def _function(name: str, terms: Sequence[str]) -> list[str]:
    body = "\n          && ".join(terms)
    return [f"      function {name}() {{", f"        return {body};", "      }", ""]


def _allows(rules: DocumentRules) -> list[str]:
    """Read and delete by the owner; create and update by the owner, leaving the function's fields alone."""
    owner = rules.owner
    assert owner is not None
    is_owner = f"{owner.existing()} == request.auth.uid"
    update = ["signedIn()", is_owner]
    if owner.field is not None:
        # The owner field is itself the capability: moving a document to another user is refused.
        update.append(f"{owner.incoming()} == {owner.existing()}")
    update.append("functionFieldsUnchanged()")
    return [
        f"      allow read: if signedIn() && {is_owner};",
        "",
        "      allow create: if signedIn()",
        f"        && {owner.incoming()} == request.auth.uid",
        "        && functionFieldsNeutral();",
        "",
        "      allow update: if " + "\n        && ".join(update) + ";",
        "",
        f"      allow delete: if signedIn() && {is_owner};",
    ]


# --- Storage -------------------------------------------------------------------------------------------------------


def storage_rules(routes: Sequence[Route]) -> str:
    """storage.rules for these routes."""
    blocks = [STORAGE_HEADER.replace("{made_by}", _made_by("Cloud Storage", routes))]
    seen: set[str] = set()
    for route in routes:
        for block in (_source_block(route), _output_block(route)):
            text = "\n".join(block) + "\n"
            if text not in seen:  # routes sharing an output folder need its rules once
                seen.add(text)
                blocks.append(text)
    return "\n".join(blocks) + FOOTER


def _source_block(route: Route) -> list[str]:
    """Uploads under the route's `match`: only by its owner, only images within the size limit."""
    path = RulePath.of(route.match.segments, route)
    head = f"    match {path.text()} {{"
    if route.owner is None:
        text = (
            f"{route.match.text}: route {route.name}'s sources. It names no owner, so no client may read or write "
            "here; the app's servers upload with their own credentials."
        )
        return [*_comment(text, 4), head, "      allow read, write: if false;", "    }"]
    owner = f"isOwner({route.owner})"
    ids = " && ".join(f"validId({name})" for name in route.match.captures[:-1] if name is not None)
    checks = " && ".join(part for part in (owner, ids, f"validImage({_bytes(route.imaging.max_input_bytes)})") if part)
    text = f"{route.match.text}: route {route.name}'s sources; the signed-in owner ({{{route.owner}}}) uploads images."
    return [
        *_comment(text, 4),
        head,
        "      // Only the owner sees their originals (SDK getDownloadURL/getBytes/list).",
        f"      allow read: if {owner};",
        "      // Upload or overwrite (a re-upload is a newer generation: the function replaces the result).",
        f"      allow create, update: if {checks};",
        "      // Owners may remove their own uploads; the function acknowledges events for deleted generations.",
        f"      allow delete: if {owner};",
        "    }",
    ]


def _output_block(route: Route) -> list[str]:
    """The route's output folder: fetched by signed-in users, listed by its owner, written by no client."""
    folders = route.output.text[:-1].split("/")
    used = set(route.output.placeholders())
    file_variable = next(name for name in ("fileName", "outputFile", "outputFileName") if name not in used)
    path = RulePath.of([*folders, f"{{{file_variable}}}"], route)
    owner_variable = route.owner if route.owner is not None and path.index_of(route.owner) is not None else None
    listing = f"isOwner({owner_variable})" if owner_variable else "false"
    text = f"{route.output.text}: route {route.name}'s outputs, written only by the function (its service account)."
    return [
        *_comment(text, 4),
        f"    match {path.text()} {{",
        "      // Any signed-in user may fetch a variant through the SDK (the app shows them to other users; the",
        "      // recorded token URLs work without rules anyway). Listing a folder is for its owner only.",
        "      allow get: if signedIn();",
        f"      allow list: if {listing};",
        "      // No client writes at all.",
        "      allow write: if false;",
        "    }",
    ]


def _bytes(count: int) -> str:
    """A byte count as rules source: `50 * 1024 * 1024` for whole MiB."""
    return f"{count // _MIB} * 1024 * 1024" if count % _MIB == 0 else str(count)
