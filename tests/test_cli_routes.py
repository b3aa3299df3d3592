"""`routes check`, `routes explain`, and `--route` of `process` and `demo`, through the CLI's own entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from image_pipeline.__main__ import main
from image_pipeline.devtools.demo_upload import DemoUpload
from image_pipeline.ports import nested_fields
from image_pipeline.settings import Settings
from tests.imaging_fixtures import encode, noise

ERROR = "python -m image_pipeline routes: error: "

# The three routes: CharaForge's, an avatar, and a gallery with one document per image.
ROUTES = """
[[route]]
name = "showcase"
match = "raw-uploads/{uid}/{characterId}/{file}"
document = "characters/{characterId}"
field = "visuals.showcase"
require = { "meta.userId" = "{uid}" }
owner = "{uid}"
output = "showcase-images/{uid}/{characterId}/"
[route.mirror]
status = "visuals.showcaseProcessingStatus"
url = "visuals.showcaseImageUrl"
ready = "visuals.isShowcaseProcessed"
[route.variants]
thumb = 256
medium = 1024
large = 2048

[[route]]
name = "avatar"
match = "users/{uid}/avatar/{file}"
document = "users/{uid}"
field = "avatar"
missing = "create"
owner = "{uid}"
output = "avatars/{uid}/"
formats = ["avif", "webp"]
[route.variants]
small = { box = "256x256", fit = "cover" }
tiny = { box = "64x64", fit = "cover" }

[[route]]
name = "gallery"
match = "products/{productId}/images/{file}"
document = "products/{productId}/images/{stem}"
field = "image"
missing = "create"
output = "product-images/{productId}/"
formats = ["webp", "jpeg"]
quality = { jpeg = 85 }
background = "#000000"
delete_original = "on_success"
cache_control = "public, max-age=3600"
keep_animation = true
[route.variants]
thumb = 256
large = 1600
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting of this machine's environment leaks into a test."""
    for variable in Settings.variables():
        monkeypatch.delenv(variable.name, raising=False)
    monkeypatch.delenv("ROUTES_FILE", raising=False)


@pytest.fixture
def routes_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.toml"
    path.write_text(ROUTES)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def block(out: str, name: str) -> list[str]:
    """The lines `routes check` prints for one route."""
    lines = out.splitlines()
    start = lines.index(f"route {name!r}")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return [" ".join(line.split()) for line in lines[start + 1 : end]]


# ---------------------------------------------------------------------------------------------------------------------
# routes check


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "showcase",
            [
                "match raw-uploads/{uid}/{characterId}/{file} (sources listed under raw-uploads/)",
                "document characters/{characterId}",
                "field visuals.showcase",
                "require meta.userId = {uid}",
                "missing wait",
                "owner {uid}",
                "output showcase-images/{uid}/{characterId}/{stem}-{generation}-{variant}.{ext}",
                "formats webp (quality 80, primary)",
                "variants thumb 256x256 inside, medium 1024x1024 inside, large 2048x2048 inside",
                "mirror status = visuals.showcaseProcessingStatus, url = visuals.showcaseImageUrl, "
                "ready = visuals.isShowcaseProcessed",
                "cache_control public, max-age=31536000, immutable",
                "delete_original never",
                "keep_animation false",
                "background #ffffff",
            ],
            id="showcase",
        ),
        pytest.param(
            "avatar",
            [
                "match users/{uid}/avatar/{file} (sources listed under users/)",
                "document users/{uid}",
                "field avatar",
                "require (none)",
                "missing create",
                "owner {uid}",
                "output avatars/{uid}/{stem}-{generation}-{variant}.{ext}",
                "formats avif (quality 50, primary), webp (quality 80)",
                "variants small 256x256 cover, tiny 64x64 cover",
                "mirror (none)",
                "cache_control public, max-age=31536000, immutable",
                "delete_original never",
                "keep_animation false",
                "background #ffffff",
            ],
            id="avatar",
        ),
        pytest.param(
            "gallery",
            [
                "match products/{productId}/images/{file} (sources listed under products/)",
                "document products/{productId}/images/{stem}",
                "field image",
                "require (none)",
                "missing create",
                "owner (none: no client uploads in generated rules)",
                "output product-images/{productId}/{stem}-{generation}-{variant}.{ext}",
                "formats webp (quality 80, primary), jpeg (quality 85)",
                "variants thumb 256x256 inside, large 1600x1600 inside",
                "mirror (none)",
                "cache_control public, max-age=3600",
                "delete_original on_success",
                "keep_animation true",
                "background #000000",
            ],
            id="gallery",
        ),
    ],
)
def test_check_prints_every_key_of_every_route(capsys, routes_file: Path, name: str, expected: list[str]) -> None:
    code, out, err = run(capsys, "routes", "check", str(routes_file))

    assert (code, err) == (0, "")
    assert out.startswith(f"3 routes from {routes_file}, tried in this order:")
    assert block(out, name) == expected


def test_check_without_a_file_shows_the_built_in_route_from_the_environment(capsys, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_PREFIX", "uploads/")
    monkeypatch.setenv("OUTPUT_FORMAT", "avif")

    code, out, _ = run(capsys, "routes", "check")

    assert code == 0
    assert out.startswith("1 route from the built-in route (ROUTES_FILE is not set)")
    lines = block(out, "showcase")
    assert "match uploads/{uid}/{characterId}/{file} (sources listed under uploads/)" in lines
    assert "formats avif (quality 80, primary)" in lines


def test_check_without_a_file_reads_routes_file(capsys, monkeypatch, routes_file: Path) -> None:
    monkeypatch.setenv("ROUTES_FILE", str(routes_file))

    code, out, _ = run(capsys, "routes", "check")

    assert code == 0
    assert out.startswith(f"3 routes from ROUTES_FILE={routes_file}")
    assert [line for line in out.splitlines() if line.startswith("route ")] == [
        "route 'showcase'",
        "route 'avatar'",
        "route 'gallery'",
    ]


@pytest.mark.parametrize(
    ("broken", "fragments"),
    [
        pytest.param(
            ROUTES.replace('formats = ["avif", "webp"]', 'formats = ["avif", "gif"]'),
            ["route 'avatar'", "formats:", "'gif'"],
            id="bad-format",
        ),
        pytest.param(
            ROUTES.replace('field = "image"', 'field = "image"\nsizes = 3'),
            ["route 'gallery'", "unknown key 'sizes'"],
            id="unknown-key",
        ),
        pytest.param(
            ROUTES.replace('output = "avatars/{uid}/"', 'output = "users/{uid}/avatar/"'),
            ["route 'avatar'", "output 'users/{uid}/avatar/'", "would trigger the function again"],
            id="loop",
        ),
        pytest.param(
            ROUTES.replace('name = "gallery"', 'name = "avatar"'),
            ["route 'avatar'", "name: used by more than one route"],
            id="duplicate-name",
        ),
        pytest.param(
            ROUTES.replace('formats = ["avif", "webp"]', 'formats = ["avif", "webp"]\nnames = "{stem}_{box}.webp"'),
            ["route 'avatar'", "names:", "must end in '.{ext}'"],
            id="names",
        ),
        pytest.param("[[route]\n", ["not valid TOML"], id="not-toml"),
    ],
)
def test_check_refuses_a_bad_file_with_one_line(capsys, tmp_path: Path, broken: str, fragments: list[str]) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(broken)

    code, out, err = run(capsys, "routes", "check", str(path))

    assert (code, out) == (2, "")
    assert err.startswith(ERROR)
    assert err.count("\n") == 1
    for fragment in fragments:
        assert fragment in err


def test_check_refuses_an_unreadable_file(capsys, tmp_path: Path) -> None:
    code, _, err = run(capsys, "routes", "check", str(tmp_path / "nowhere.toml"))

    assert code == 2
    assert err.startswith(ERROR) and "cannot read it" in err


@pytest.mark.parametrize("variable", ["VARIANTS", "SOURCE_PREFIX", "OUTPUT_FORMAT"])
def test_check_refuses_route_settings_beside_a_file(capsys, monkeypatch, routes_file, variable) -> None:
    monkeypatch.setenv(variable, {"VARIANTS": "a:1", "SOURCE_PREFIX": "x/", "OUTPUT_FORMAT": "png"}[variable])

    code, _, err = run(capsys, "routes", "check", str(routes_file))

    assert code == 2
    assert err.startswith(ERROR) and variable in err


# ---------------------------------------------------------------------------------------------------------------------
# routes explain


@pytest.mark.parametrize(
    ("path", "generation", "expected"),
    [
        pytest.param(
            "raw-uploads/u1/c1/My Photo.JPG",
            None,
            [
                "'raw-uploads/u1/c1/My Photo.JPG': route 'showcase' takes it",
                "captures uid = u1, characterId = c1, file = My Photo.JPG, stem = My_Photo",
                "document characters/c1 (waited for while the event is young, if missing)",
                "field visuals.showcase",
                "require meta.userId = u1 (else not_owner: nothing written)",
                "source kept",
                "thumb webp showcase-images/u1/c1/My_Photo-1-thumb.webp",
                "medium webp showcase-images/u1/c1/My_Photo-1-medium.webp",
                "large webp showcase-images/u1/c1/My_Photo-1-large.webp",
            ],
            id="showcase",
        ),
        pytest.param(
            "users/u-7/avatar/me.heic",
            "17",
            [
                "'users/u-7/avatar/me.heic': route 'avatar' takes it",
                "document users/u-7 (created if missing)",
                "field avatar",
                "outputs for generation 17 (one bigger than a larger one is not written: sameAs):",
                "small avif avatars/u-7/me-17-small.avif",
                "small webp avatars/u-7/me-17-small.webp",
                "tiny avif avatars/u-7/me-17-tiny.avif",
                "tiny webp avatars/u-7/me-17-tiny.webp",
            ],
            id="avatar-two-formats",
        ),
        pytest.param(
            "products/p1/images/front.png",
            "1700000000000001",
            [
                "'products/p1/images/front.png': route 'gallery' takes it",
                "document products/p1/images/front (created if missing)",
                "field image",
                "source deleted once its variants are recorded",
                "thumb jpeg product-images/p1/front-1700000000000001-thumb.jpg",
                "large webp product-images/p1/front-1700000000000001-large.webp",
            ],
            id="gallery-document-per-image",
        ),
    ],
)
def test_explain_names_route_document_field_and_outputs(capsys, monkeypatch, routes_file, path, generation, expected):
    monkeypatch.setenv("ROUTES_FILE", str(routes_file))
    flags = ["--generation", generation] if generation else []

    code, out, err = run(capsys, "routes", "explain", path, *flags)

    assert (code, err) == (0, "")
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines[0].startswith(expected[0])
    for line in expected[1:]:
        assert line in lines


@pytest.mark.parametrize(
    ("path", "reasons"),
    [
        pytest.param(
            "users/u1/avatars/me.png",
            {
                "showcase": "segment 1 is 'users', the match wants the literal 'raw-uploads'",
                "avatar": "segment 3 is 'avatars', the match wants the literal 'avatar'",
                "gallery": "segment 1 is 'users', the match wants the literal 'products'",
            },
            id="literal-mismatch",
        ),
        pytest.param(
            "raw-uploads/u1/c1/d/x.png",
            {
                "showcase": "the path has 5 segments, the match has 4",
                "avatar": "the path has 5 segments, the match has 4",
            },
            id="segment-count",
        ),
        pytest.param(
            "raw-uploads/u.1/c1/x.png",
            {"showcase": "segment 2 'u.1' is not a value for {uid} (1-128 of A-Z a-z 0-9 _ -)"},
            id="capture-value",
        ),
        pytest.param(
            "raw-uploads/u1/c1/..",
            {"showcase": "the file name '..' is empty, '.' or '..', or has control characters"},
            id="file-name",
        ),
        pytest.param(
            "raw-uploads/u1/c1/",
            {"showcase": "the file name '' is empty"},
            id="folder-placeholder",
        ),
    ],
)
def test_explain_says_why_no_route_takes_a_path(capsys, monkeypatch, routes_file, path, reasons) -> None:
    monkeypatch.setenv("ROUTES_FILE", str(routes_file))

    code, out, _ = run(capsys, "routes", "explain", path)

    assert code == 1
    assert out.startswith(f"{path!r}: no route takes it")
    for name, reason in reasons.items():
        assert any(line.startswith(f"  route {name!r}") and reason in line for line in out.splitlines()), (name, out)


def test_explain_recognises_an_output(capsys, routes_file) -> None:
    code, out, _ = run(capsys, "routes", "explain", "avatars/u1/me-1-small.avif", "--routes-file", str(routes_file))

    assert code == 1
    assert "it has the shape of an output of route 'avatar' (avatars/{uid}/{stem}-{generation}-{variant}.{ext})" in out


PICTURES = """
[[route]]
name = "pictures"
match = "users/{uid}/pictures/{file}"
document = "users/{uid}/pictures/{stem}"
field = "image"
output = "users/{uid}/pictures/thumbs/"
names = "{stem}_{box}.{ext}"
[route.variants]
small = { box = "200x200" }
"""


def test_check_and_explain_show_custom_names_and_that_they_are_overwritten(capsys, tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(PICTURES)

    _, checked, _ = run(capsys, "routes", "check", str(path))
    code, explained, _ = run(capsys, "routes", "explain", "users/u1/pictures/Me.jpg", "--routes-file", str(path))

    assert code == 0
    assert (
        "output users/{uid}/pictures/thumbs/{stem}_{box}.{ext} (overwritten by each new upload: no {generation})"
        in (block(checked, "pictures"))
    )
    assert "cache_control public, max-age=3600" in block(checked, "pictures")
    lines = [" ".join(line.split()) for line in explained.splitlines()]
    assert lines[-2:] == [
        "outputs (names without {generation}: each upload overwrites the one before's):",
        "small webp users/u1/pictures/thumbs/Me_200x200.webp",
    ]


@pytest.mark.parametrize(
    ("name", "recognised"),
    [("users/u1/pictures/thumbs/Me_200x200.webp", True), ("users/u1/pictures/thumbs/Me-1-small.webp", False)],
)
def test_explain_recognises_an_output_by_its_names(capsys, tmp_path: Path, name: str, recognised: bool) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(PICTURES)

    code, out, _ = run(capsys, "routes", "explain", name, "--routes-file", str(path))

    assert code == 1
    assert ("it has the shape of an output of route 'pictures'" in out) is recognised


def test_explain_uses_the_built_in_route_without_routes_file(capsys, monkeypatch) -> None:
    monkeypatch.setenv("OUTPUT_PREFIX", "variants/")

    code, out, _ = run(capsys, "routes", "explain", "raw-uploads/u1/c1/x.jpg")

    assert code == 0
    assert "(the built-in route (ROUTES_FILE is not set)" in out
    assert "variants/u1/c1/x-1-large.webp" in out


def test_explain_a_path_two_routes_fit_goes_to_the_first(capsys, tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(
        ROUTES + '\n[[route]]\nname = "any"\nmatch = "raw-uploads/{b}/{c}/{file}"\ndocument = "any/{b}"\nfield = "m"\n'
        'output = "any-out/"\n[route.variants]\nx = 10\n'
    )

    code, out, _ = run(capsys, "routes", "explain", "raw-uploads/u1/c1/x.jpg", "--routes-file", str(path))

    assert code == 0
    assert "route 'showcase' takes it" in out
    assert "(it also fits 'any', which come later and are not used)" in out


@pytest.mark.parametrize("generation", ["0", "-1", "x", str(2**63)])
def test_explain_refuses_a_bad_generation(capsys, generation: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["routes", "explain", "raw-uploads/u/c/x.jpg", "--generation", generation])

    assert exited.value.code == 2
    assert "--generation" in capsys.readouterr().err


def test_explain_refuses_a_bad_routes_file(capsys, tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(ROUTES.replace('match = "users/{uid}/avatar/{file}"', 'match = "users/{uid}/avatar"'))

    code, out, err = run(capsys, "routes", "explain", "users/u/avatar/x.png", "--routes-file", str(path))

    assert (code, out) == (2, "")
    assert err.startswith(ERROR) and "route 'avatar': match:" in err


# ---------------------------------------------------------------------------------------------------------------------
# process --route and demo --route


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        pytest.param(None, {"thumb": ("webp", 160, 120), "medium": ("webp", 160, 120), "large": ("webp", 160, 120)},
                     id="first-route"),
        pytest.param("avatar", {"small": ("avif", 120, 120), "tiny": ("avif", 64, 64)}, id="avatar"),
        pytest.param("gallery", {"thumb": ("webp", 160, 120), "large": ("webp", 160, 120)}, id="gallery"),
    ],
)  # fmt: skip
def test_process_makes_what_the_chosen_route_makes(capsys, monkeypatch, routes_file, tmp_path, route, expected) -> None:
    monkeypatch.setenv("ROUTES_FILE", str(routes_file))
    image = tmp_path / "in.png"
    image.write_bytes(encode(noise((160, 120)), "PNG"))
    flags = ["--route", route] if route else []

    code, out, _ = run(capsys, "process", str(image), "--out", str(tmp_path / "out"), *flags)

    assert code == 0
    variants = json.loads(out)["variants"]
    assert {v["name"]: (v["format"], v["width"], v["height"]) for v in variants} == expected


def test_process_writes_every_format_of_the_route(capsys, monkeypatch, routes_file, tmp_path) -> None:
    monkeypatch.setenv("ROUTES_FILE", str(routes_file))
    image = tmp_path / "in.png"
    image.write_bytes(encode(noise((80, 60)), "PNG"))

    run(capsys, "process", str(image), "--out", str(tmp_path / "out"), "--route", "gallery")

    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "in_large.jpg", "in_large.webp", "in_thumb.jpg", "in_thumb.webp",
    ]  # fmt: skip


@pytest.mark.parametrize("command", ["process", "demo"])
def test_an_unknown_route_is_a_usage_error(capsys, monkeypatch, routes_file, tmp_path, command) -> None:
    monkeypatch.setenv("ROUTES_FILE", str(routes_file))
    image = tmp_path / "in.png"
    image.write_bytes(encode(noise((8, 8)), "PNG"))
    out_flag = ["--out", str(tmp_path / "out")] if command == "process" else []
    argv = [command, str(image), "--route", "banner", *out_flag]

    code, out, err = run(capsys, *argv)

    assert code == 2
    assert "--route 'banner' is not a configured route (routes: showcase, avatar, gallery)" in out + err


@pytest.mark.parametrize(
    ("route", "name", "document", "seed"),
    [
        pytest.param(
            "showcase",
            "raw-uploads/demo-user/demo-character/sample.jpg",
            "characters/demo-character",
            {"meta.userId": "demo-user", "name": "Demo character"},
            id="showcase-as-before",
        ),
        pytest.param("avatar", "users/demo-user/avatar/sample.jpg", "users/demo-user", None, id="avatar-created"),
        pytest.param(
            "gallery",
            "products/demo-productId/images/sample.jpg",
            "products/demo-productId/images/sample",
            None,
            id="gallery-created",
        ),
    ],
)
def test_the_demo_uploads_where_the_route_matches(monkeypatch, routes_file, route, name, document, seed) -> None:
    monkeypatch.setenv("ROUTES_FILE", str(routes_file))
    settings = Settings.from_env()
    chosen = next(candidate for candidate in settings.routes if candidate.name == route)

    plan = DemoUpload.of(chosen, "sample.jpg", settings.routes)

    assert (plan.name, plan.document, plan.seed) == (name, document, seed)


def test_the_demo_seeds_the_required_fields_of_a_waiting_route(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(
        '[[route]]\nname = "post"\nmatch = "posts/{author}/{postId}/{file}"\ndocument = "blogs/main/posts/{postId}"\n'
        'field = "cover"\nrequire = { "owner.id" = "{author}", "owner.kind" = "user", "slug" = "{postId}" }\n'
        'output = "covers/{postId}/"\n[route.variants]\nx = 10\n'
    )
    settings = Settings.from_env({"ROUTES_FILE": str(path)})

    plan = DemoUpload.of(settings.routes[0], "cover.png", settings.routes)

    assert plan.name == "posts/demo-author/demo-postId/cover.png"
    assert plan.seed == {"owner.id": "demo-author", "owner.kind": "user", "slug": "demo-postId", "name": "Demo post"}


def test_the_demo_refuses_a_route_an_earlier_route_shadows(capsys, monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(
        '[[route]]\nname = "all"\nmatch = "{a}/{b}/{file}"\ndocument = "d/{b}"\nfield = "m"\noutput = "o/"\n'
        "[route.variants]\nx = 10\n\n"
        '[[route]]\nname = "users"\nmatch = "users/{uid}/{file}"\ndocument = "u/{uid}"\nfield = "m"\noutput = "p/"\n'
        "[route.variants]\nx = 10\n"
    )
    monkeypatch.setenv("ROUTES_FILE", str(path))

    code, _, err = run(capsys, "demo", "--route", "users")

    assert code == 2
    assert "--route 'users': the demo upload 'users/demo-user/sample.jpg' would be taken by route 'all'" in err


def test_nested_fields_turns_dotted_paths_into_maps() -> None:
    assert nested_fields({"a.b.c": 1, "a.d": 2, "e": 3}) == {"a": {"b": {"c": 1}, "d": 2}, "e": 3}
