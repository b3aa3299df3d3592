"""What one backfill run covers: the bucket and prefix, this task's shard of the names, and the processing budget."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shard:
    """This task's share of the objects: those whose name hashes to `index` modulo `count`."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= index < count")

    def owns(self, name: str) -> bool:
        """Whether the object belongs to this shard."""
        return shard_of(name, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(name: str, count: int) -> int:
    """A shard number for an object name that every process computes alike (unlike the salted hash())."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


@dataclass(frozen=True)
class Plan:
    """What one run does: where to list, which share to take, and how."""

    bucket: str
    # Listed one after the other; none is inside another, so no object is examined twice.
    prefixes: tuple[str, ...]
    # Route names to process (empty: every route); objects of other routes are skipped.
    routes: tuple[str, ...] = ()
    shard: Shard = Shard()
    force: bool = False
    dry_run: bool = False
    limit: int | None = None
    concurrency: int = 4
    attempts: int = 4
    backoff_s: float = 1.0


class Budget:
    """How many more objects `--limit` lets the run process; unlimited when the limit is None."""

    def __init__(self, limit: int | None) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Use up one object of the budget, if any is left."""
        with self._lock:
            if self._left is None:
                return True
            if self._left == 0:
                return False
            self._left -= 1
            return True

    @property
    def exhausted(self) -> bool:
        """Whether no object may be processed any more."""
        return self._left == 0


def owned(resources: Iterable[Mapping[str, Any]], shard: Shard) -> Iterator[Mapping[str, Any]]:
    """The listed objects that belong to this shard."""
    return (resource for resource in resources if shard.owns(str(resource.get("name", ""))))


def listing_prefixes(prefixes: Iterable[str]) -> tuple[str, ...]:
    """The prefixes to list, without any that another one already covers."""
    unique = sorted(set(prefixes))
    return tuple(
        prefix for prefix in unique if not any(prefix != other and prefix.startswith(other) for other in unique)
    )
