"""What must hold after any fault or race: the document never regresses, a complete result is whole and matches Storage,
and each processed generation has exactly one set of outputs."""

from __future__ import annotations

import io
import itertools
import re
import threading
from collections import defaultdict
from typing import Any

from google.cloud import firestore, storage
from PIL import Image

from tests.backend import Backend, token_of

VARIANTS = frozenset({"thumb", "medium", "large"})
_SETTLED = ("complete", "failed")
_OUTPUT_NAME = re.compile(r"-(?P<generation>[0-9]+)-(?P<variant>[a-z][a-z0-9_-]*)\.[a-z]+$")


def progress(document: dict[str, Any] | None) -> tuple[int, int]:
    """How far a document has got: (recorded source generation, 0 while finalizing or 1 once settled)."""
    visuals = (document or {}).get("visuals") or {}
    generation = ((visuals.get("showcase") or {}).get("source") or {}).get("generation")
    settled = visuals.get("showcaseProcessingStatus") in _SETTLED
    return (int(generation) if generation else 0, int(settled))


def regressions(states: list[dict[str, Any] | None]) -> list[str]:
    """Each step at which the document went back: to an older generation, or from settled to finalizing."""
    steps = itertools.pairwise(states)
    return [f"{progress(before)} -> {progress(after)}" for before, after in steps if progress(after) < progress(before)]


class DocumentHistory:
    """Every state of one document that a Firestore listener saw, in order.

    Call `follow()` again after an emulator restart."""

    def __init__(self, reference: firestore.DocumentReference) -> None:
        self._reference = reference
        self._states: list[dict[str, Any] | None] = []
        self._changed = threading.Condition()
        self._watch: Any = None
        self.follow()

    def follow(self) -> None:
        """(Re)subscribe and wait for the listener's first snapshot."""
        self.stop()
        seen = len(self._states)
        self._watch = self._reference.on_snapshot(self._record)
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._states) > seen, 10):
                raise TimeoutError(f"no snapshot of {self._reference.path} within 10 s")

    def settle(self, timeout_s: float = 10) -> list[dict[str, Any] | None]:
        """The states seen, once the listener has caught up with the stored document."""
        current = self._reference.get().to_dict()
        with self._changed:
            if not self._changed.wait_for(lambda: self._states and self._states[-1] == current, timeout_s):
                raise TimeoutError(f"the listener did not catch up with {self._reference.path} within {timeout_s} s")
            return list(self._states)

    def stop(self) -> None:
        """Unsubscribe."""
        if self._watch is not None:
            self._watch.unsubscribe()
            self._watch = None

    def _record(self, snapshots: list[Any], changes: Any, read_time: Any) -> None:
        """Listener callback: append the document's new state."""
        with self._changed:
            self._states.extend(snapshot.to_dict() if snapshot.exists else None for snapshot in snapshots)
            self._changed.notify_all()


def output_sets(objects: dict[str, storage.Blob]) -> dict[str, set[str]]:
    """The variant names stored for each source generation, from the output object names."""
    sets: dict[str, set[str]] = defaultdict(set)
    for name in objects:
        match = _OUTPUT_NAME.search(name)
        assert match, f"unexpected output name {name}"
        sets[match["generation"]].add(match["variant"])
    return dict(sets)


def assert_complete(backend: Backend, character_id: str, source: dict[str, Any], output_prefix: str) -> None:
    """The document holds `source`'s complete result, and every variant it names is stored, matches and decodes."""
    visuals = backend.document(character_id)["visuals"]
    showcase = visuals["showcase"]
    assert (visuals["showcaseProcessingStatus"], visuals["isShowcaseProcessed"]) == ("complete", True)
    assert showcase["source"]["generation"] == source["generation"] and showcase["error"] is None
    assert set(showcase["variants"]) == VARIANTS
    assert visuals["showcaseImageUrl"] == showcase["variants"]["large"]["url"]
    stored = backend.objects(output_prefix)
    for variant in showcase["variants"].values():
        blob = stored[variant["path"]]
        assert variant["url"].endswith(f"&token={token_of(blob)}")
        body = blob.download_as_bytes()
        assert len(body) == blob.size == variant["bytes"]
        assert Image.open(io.BytesIO(body)).size == (variant["width"], variant["height"])
