"""What a run whose journal could not be written kept nowhere.

A journal write can fail (disk full, a file size limit) while the run goes
on with Firestore as its only copy. If Firestore too is unreachable at the
end, the run says exactly how many points neither copy holds: counted from
what Firestore acknowledged and what the journal file really holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aletheia.tracking.journal import read


def placeable(indexes: set[int], chunk_points: int) -> int:
    """How many of ``indexes`` chunk documents can hold: each chunk's gapless prefix.

    A chunk stores parallel arrays from its first index on, so a point after
    a missing one in its chunk has no place.
    """
    count = 0
    for n in {i // chunk_points for i in indexes}:
        i = n * chunk_points
        while i in indexes and i // chunk_points == n:
            i += 1
        count += i - n * chunk_points
    return count


@dataclass
class JournalLoss:
    """What a run whose journal failed could keep nowhere."""

    points: dict[str, int]  # per metric: points neither in Firestore nor in the journal
    ended: bool  # the journal holds the run's end
    logged: int  # points the run logged

    @classmethod
    def count(
        cls,
        path: Path,
        logged: Mapping[str, int],
        acked: Mapping[str, int],
        chunk_points: int,
    ) -> JournalLoss:
        """Per metric: ``logged`` points minus those Firestore acknowledged or the file holds."""
        total = sum(logged.values())
        try:
            state = read(path)
        except OSError:  # unreadable: only Firestore's copy counts
            lost = {k: n - acked.get(k, 0) for k, n in logged.items() if n > acked.get(k, 0)}
            return cls(lost, False, total)
        loss = cls({}, state.ended is not None, total)
        for key, n in sorted(logged.items()):
            have = {p.index for p in state.points.get(key, ())}
            have.update(range(acked.get(key, 0)))
            missing = n - placeable(have, chunk_points)
            if missing:
                loss.points[key] = missing
        return loss

    def describe(self, run: str, status: str, path: Path) -> str:
        """One message: how many points were lost, per metric, and what sync will do."""
        total = sum(self.points.values())
        per_key = ", ".join(f"{key}: {n:,}" for key, n in self.points.items())
        lost = (
            f"{total:,} of {self.logged:,} points could not be kept ({per_key})"
            if total
            else f"all {self.logged:,} points are in Firestore or the journal"
        )
        end = (
            ""
            if self.ended
            else f"; its end ({status}) is recorded nowhere, so `aletheia sync` will settle "
            "it as crashed"
        )
        return (
            f"run {run} ended with Firestore unreachable and its journal {path} not "
            f"writable: {lost}{end}. Free the disk, then run `aletheia sync`"
        )
