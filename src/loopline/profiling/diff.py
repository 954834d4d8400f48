"""What changed between two dataset versions: schema, row count, and per column the null
share, mean, distinct count, categories and a drift score, all read from the stored
profiles (no data is read back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loopline.core.datasets import DatasetVersion
from loopline.profiling.drift import THRESHOLDS
from loopline.profiling.profile import OTHER, CategoricalProfile, NumericProfile, ReferenceProfile
from loopline.profiling.stats import jensen_shannon_categorical, wasserstein_normed


@dataclass
class DatasetDiff:
    old: str
    new: str
    rows: tuple[int, int]
    added: list[str]
    removed: list[str]
    retyped: list[tuple[str, str, str]]  # column, old type, new type
    changes: list[dict[str, Any]]  # per common column: what moved, and its drift score

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "rows": list(self.rows),
            "added": self.added,
            "removed": self.removed,
            "retyped": [list(r) for r in self.retyped],
            "changes": self.changes,
        }


def diff_versions(
    old: DatasetVersion, new: DatasetVersion, old_profile: ReferenceProfile, new_profile: ReferenceProfile
) -> DatasetDiff:
    old_types, new_types = old.schema, new.schema
    summaries = {c["name"]: c for c in new.columns}
    old_summaries = {c["name"]: c for c in old.columns}
    changes = []
    for name in (n for n in old_types if n in new_types):
        change: dict[str, Any] = {"column": name}
        before, after = old_summaries[name], summaries[name]
        for key in ("nulls", "distinct", "mean", "min", "max"):
            if before.get(key) != after.get(key):
                change[key] = [before.get(key), after.get(key)]
        moved = len(change) > 1
        change.update(_drift(old_profile.columns.get(name), new_profile.columns.get(name)))
        if moved or change.get("drifted"):
            changes.append(change)
    return DatasetDiff(
        old=old.uri,
        new=new.uri,
        rows=(old.rows, new.rows),
        added=[n for n in new_types if n not in old_types],
        removed=[n for n in old_types if n not in new_types],
        retyped=[
            (n, old_types[n], new_types[n])
            for n in old_types
            if n in new_types and old_types[n] != new_types[n]
        ],
        changes=changes,
    )


def _drift(old: Any, new: Any) -> dict[str, Any]:
    if old is None or new is None or not old.count or not new.count:
        return {}
    if isinstance(old, NumericProfile) and isinstance(new, NumericProfile):
        score = wasserstein_normed(old, new.sample)  # the new side through its stored sample
        return {"test": "wasserstein", "score": score, "drifted": score >= THRESHOLDS["wasserstein"]}
    if isinstance(old, CategoricalProfile) and isinstance(new, CategoricalProfile):
        score = jensen_shannon_categorical(old, new.frequencies)
        found: dict[str, Any] = {
            "test": "jensenshannon",
            "score": score,
            "drifted": score >= THRESHOLDS["jensenshannon"],
        }
        # Only when a side kept every category can a value missing from it be news.
        unseen = [k for k in new.frequencies if k not in old.frequencies and k != OTHER]
        if unseen and OTHER not in old.frequencies:
            found["new_categories"] = unseen[:20]
        gone = [k for k in old.frequencies if k not in new.frequencies and k != OTHER]
        if gone and OTHER not in new.frequencies:
            found["gone_categories"] = gone[:20]
        return found
    return {"test": "kind", "drifted": True, "kind": [old.kind, new.kind]}
