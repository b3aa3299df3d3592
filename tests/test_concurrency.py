"""Races on the real emulators: duplicate events at once, and generations delivered out of order and at once, with the
fault proxy holding requests so the attempts really overlap. One result per newest generation, never a regression."""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.backend import Backend, photo
from tests.faultproxy import DOWNLOAD, UPLOAD, Fault, FaultProxy
from tests.invariants import VARIANTS, DocumentHistory, assert_complete, output_sets, regressions

OWNER = "user-c"
CHARACTER = "char-c"
OUTPUTS = f"showcase-images/{OWNER}/{CHARACTER}/"
DUPLICATES = 5


def history(backend: Backend) -> DocumentHistory:
    """A listener on the character document, recording every state it goes through."""
    return DocumentHistory(backend.firestore_client.collection("characters").document(CHARACTER))


def outcomes(backend: Backend, event_ids: list[str]) -> Counter[str]:
    """How many summary lines of these events ended in each outcome."""
    return Counter(line["outcome"] for event_id in event_ids for line in backend.summary_lines(event_id))


@pytest.mark.parametrize("same_event_id", [True, False], ids=["one-event-redelivered", "distinct-events"])
def test_concurrent_duplicates_overlapping_in_every_upload_make_one_result(
    backend: Backend, storage_proxy: FaultProxy, same_event_id: bool
) -> None:
    backend.seed_character(CHARACTER, OWNER)
    source = backend.upload(f"raw-uploads/{OWNER}/{CHARACTER}/portrait.jpg", photo(800, 600))
    watched = history(backend)
    held = storage_proxy.inject(UPLOAD, Fault.HOLD)
    event_ids = ["event-1"] * DUPLICATES if same_event_id else [uuid.uuid4().hex for _ in range(DUPLICATES)]

    with ThreadPoolExecutor(DUPLICATES) as pool:
        # The first attempt claims the document; the others then find it in progress and go on as well, so all five
        # race on the same creates and on settling. (Simultaneous first claims are left out: the emulator resolves
        # conflicting writers by a 10 s lock timeout, where Firestore aborts one at once; either way a 500 and a retry.)
        attempts = [pool.submit(backend.deliver, source, event_ids[0])]
        assert storage_proxy.wait_for(held)
        attempts += [pool.submit(backend.deliver, source, event_id) for event_id in event_ids[1:]]
        assert storage_proxy.wait_for(held, injected=DUPLICATES)
        storage_proxy.release()
        statuses = [attempt.result(timeout=60) for attempt in attempts]
        # Racing settles can abort on the emulator's lock timeout: those are redelivered, as Eventarc would.
        statuses = [status if status < 500 else backend.deliver_as_eventarc(source, event_id)
                    for status, event_id in zip(statuses, event_ids, strict=True)]  # fmt: skip

    assert statuses == [200] * DUPLICATES
    assert_complete(backend, CHARACTER, source, OUTPUTS)
    assert output_sets(backend.objects(OUTPUTS)) == {source["generation"]: VARIANTS}
    settled = outcomes(backend, sorted(set(event_ids)))
    del settled["retry"]
    assert settled == {"complete": 1, "duplicate": DUPLICATES - 1}
    assert regressions(watched.settle()) == []


@pytest.mark.parametrize(
    ("order", "processed"),
    [
        pytest.param("oldest-first", [0, 1, 2], id="oldest-first-all-in-flight-at-once"),
        pytest.param("newest-first", [2], id="newest-first-older-ones-superseded"),
    ],
)
def test_generations_in_flight_together_end_at_the_newest(
    backend: Backend, storage_proxy: FaultProxy, order: str, processed: list[int]
) -> None:
    backend.seed_character(CHARACTER, OWNER)
    sources = [backend.upload(f"raw-uploads/{OWNER}/{CHARACTER}/{name}.jpg", photo(640 + 80 * i, 480)) for i, name in
               enumerate(["first", "second", "third"])]  # fmt: skip
    watched = history(backend)
    held = storage_proxy.inject(DOWNLOAD, Fault.HOLD)
    deliveries = sources if order == "oldest-first" else sources[::-1]
    event_ids = {source["generation"]: [uuid.uuid4().hex, uuid.uuid4().hex] for source in sources}

    with ThreadPoolExecutor(2 * len(sources)) as pool:
        attempts = []
        for source in deliveries:
            # Two deliveries of each generation, one after the other has claimed (see the duplicates test above).
            for event_id in event_ids[source["generation"]]:
                target = held.injected + 1
                attempts.append(pool.submit(backend.deliver, source, event_id))
                if sources.index(source) in processed:
                    assert storage_proxy.wait_for(held, injected=target)
                else:
                    assert attempts[-1].result(timeout=30) == 200
        # All processed generations are now in flight together: they download, upload and settle at once.
        storage_proxy.release()
        statuses = [attempt.result(timeout=60) for attempt in attempts]

    newest = sources[-1]
    assert statuses == [200] * len(attempts)
    assert_complete(backend, CHARACTER, newest, OUTPUTS)
    assert output_sets(backend.objects(OUTPUTS)) == {sources[i]["generation"]: VARIANTS for i in processed}
    assert outcomes(backend, event_ids[newest["generation"]]) == {"complete": 1, "duplicate": 1}
    older = [event_id for source in sources[:-1] for event_id in event_ids[source["generation"]]]
    assert set(outcomes(backend, older)) == {"superseded"}
    assert regressions(watched.settle()) == []
