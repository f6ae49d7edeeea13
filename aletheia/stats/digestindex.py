"""A manifest's content digests, indexed once per manifest object and shared.

At every file event the storage function asks two things of its version's
manifest: which paths hold the event's bytes (:mod:`aletheia.function.holders`)
and which files come after it in digest order (:func:`aletheia.stats.versionprofile.has_pending`).
Answered from scratch each time, a 10,000-file version pays a walk, a sort and
a search of its manifest at each of its 10,000 events. The manifests handed
out by the function's decode cache (``data.manifests.DecodedManifests``) are
the same object from one event to the next, so the index is kept by that
object: built at the first event, reused by the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

#: Manifests whose index is kept (the function handles a few versions at a time).
_KEPT = 4
_lock = threading.Lock()
#: ``id(manifest) -> (manifest, its index)``; the manifest is held so its id stays its.
_kept: dict[int, tuple[Mapping[str, Any], DigestIndex]] = {}


def sha256_of(entry: Any) -> str:
    """The content digest a manifest entry names (a digest, or an entry with ``.sha256``)."""
    return entry if isinstance(entry, str) else str(entry.sha256)


@dataclass(frozen=True)
class DigestIndex:
    """A manifest's digests: the paths holding each, and all of them in sorted order."""

    paths: Mapping[str, list[str]]  # sha256 -> the manifest's paths holding it
    ordered: tuple[str, ...]  # each digest once, sorted
    position: Mapping[str, int]  # sha256 -> its place in ``ordered``

    @classmethod
    def build(cls, manifest: Mapping[str, Any]) -> DigestIndex:
        """Walk ``manifest`` once."""
        paths: dict[str, list[str]] = {}
        for path, entry in manifest.items():
            paths.setdefault(sha256_of(entry), []).append(path)
        ordered = tuple(sorted(paths))
        return cls(paths, ordered, {sha: i for i, sha in enumerate(ordered)})

    def after(self, sha256: str | None) -> list[str]:
        """Every digest once, starting with the one after ``sha256`` and wrapping around
        (from the first when the manifest does not hold ``sha256``)."""
        at = self.position.get(sha256, -1) if sha256 is not None else -1
        return [*self.ordered[at + 1 :], *self.ordered[: at + 1]]


def index_of(manifest: Mapping[str, Any]) -> DigestIndex:
    """``manifest``'s index, built once while it is among the last few asked about.

    Only a read-only manifest (a ``MappingProxyType``, as the function's decode
    cache hands out) is kept: a plain dict could change under its index, so it
    gets a fresh one each time.
    """
    if not isinstance(manifest, MappingProxyType):
        return DigestIndex.build(manifest)
    with _lock:
        kept = _kept.get(id(manifest))
        if kept is not None and kept[0] is manifest:
            return kept[1]
    index = DigestIndex.build(manifest)
    with _lock:
        _kept[id(manifest)] = (manifest, index)
        while len(_kept) > _KEPT:
            del _kept[next(iter(_kept))]
    return index
