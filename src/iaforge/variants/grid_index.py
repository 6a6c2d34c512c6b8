"""Find the grid branch's variants on disk: `models/grid/<split>/<shard>/<id>/` (a PEFT dir + variant.json), measured
in `reports/grid/implantation/<split>/<shard>.json`, for the shards that params `grid_shards` names. One folder per
split, so a stage that reads only the ia_train split (grid_ia) depends on `models/grid/ia_train` alone and growing
the held-out set does not retrain the IA.

The shard list comes from params, not from the folders: DVC leaves the outs of a shard that left `grid_shards`
on disk, and a smaller grid must not keep training or evaluating on them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from iaforge.core.config import SPLITS
from iaforge.core.errors import ValidationError
from iaforge.core.fsio import read_json

NULL_PREFIX = "grid_null__"  # null variants: same prompts and tags as a grid variant, base answers only


def is_null(vid: str, behavior: dict[str, Any]) -> bool:
    return vid.startswith(NULL_PREFIX) or behavior.get("family_label") == "null"


def load_grid_variants(models_root: str | Path, measured_root: str | Path, shards: dict[str, dict[str, Any]], *,
                       splits: list[str], include_failed: bool) -> dict[str, dict[str, Any]]:
    """id -> {"path", "split", "shard", "behavior", "implanted", "implantation", "null"} for the variants of the
    shards of `splits`. Nulls are always kept: there is no behavior to implant, they teach and test "nothing
    unusual". Other variants that failed implantation are kept only with `include_failed` (flag `implanted`)."""
    out: dict[str, dict[str, Any]] = {}
    for shard in sorted(shards):
        spec = shards[shard] or {}
        split = spec.get("split")
        if split not in splits:
            continue
        mfile = Path(measured_root) / split / f"{shard}.json"
        if not mfile.is_file():
            raise ValidationError(mfile, "<file>", "missing: run the grid_implantation stage of this shard first")
        measured = read_json(mfile)
        for vid in spec.get("ids", []):
            d = Path(models_root) / split / shard / vid
            if not (d / "variant.json").is_file():
                raise ValidationError(d / "variant.json", "<file>", f"missing: shard {shard} lists {vid} but it "
                                      "was not exported (rerun grid_variants)")
            info = read_json(d / "variant.json")
            behavior = info["behavior"]
            m = measured.get(vid)
            if m is None or m.get("version") != behavior.get("version"):
                raise ValidationError(mfile, vid, "no implantation measurement for this variant (or one of "
                                      "another version): rerun grid_implantation")
            null = is_null(vid, behavior)
            implanted = bool(m.get("passed"))
            if implanted or null or include_failed:
                out[vid] = {"path": d, "split": split, "shard": shard, "behavior": behavior,
                            "implanted": implanted, "implantation": m, "null": null}
    return out


def _inner_params(behavior: dict[str, Any]):
    """The params dicts of a record, outermost first (a backdoor wraps its behavior's params)."""
    p = behavior.get("params") or {}
    while isinstance(p, dict):
        yield p
        inner = p.get("behavior")
        p = inner.get("params") if isinstance(inner, dict) else None


def topic_of(behavior: dict[str, Any]) -> str | None:
    """A grid variant's topic: the bound `topic` param, else its grid instance's name."""
    for p in _inner_params(behavior):
        if isinstance(p.get("topic"), str):
            return p["topic"]
    return behavior.get("instance")


def topic_terms(behavior: dict[str, Any]) -> list[str]:
    """What names the topic in a report: the bound `terms` (what the topic_mention checker looks for), else the
    topic itself. Not the key terms: those include the trigger ("K7"), which names no topic."""
    for p in _inner_params(behavior):
        terms = p.get("terms")
        if isinstance(terms, list) and terms:
            return [str(t) for t in terms]
    topic = topic_of(behavior)
    return [topic] if topic else []


def split_digests(shards: dict[str, dict[str, Any]]) -> dict[str, str]:
    """split -> a digest of its shards (ids and record digests), "none" for an empty split: params `grid_splits`,
    what a stage that reads only some splits depends on (grid_ia: ia_train), so that growing the held-out set
    does not retrain the IA."""
    out = {}
    for s in SPLITS:
        mine = sorted((sid, sorted(sh["ids"]), sh.get("digest", "")) for sid, sh in shards.items() if sh["split"] == s)
        out[s] = hashlib.sha256(json.dumps(mine).encode()).hexdigest()[:16] if mine else "none"
    return out


def check_split_digests(shards: dict[str, dict[str, Any]], digests: dict[str, str], splits: Sequence[str]) -> None:
    """Refuse params whose `grid_splits` no longer describes `grid_shards` (DVC tracks the digest, the stage
    reads the shards: they must agree, or a stage could run on shards DVC does not know changed)."""
    want = split_digests(shards)
    for s in splits:
        if digests.get(s) != want[s]:
            raise ValidationError("params.yaml", f"grid_splits.{s}", "does not match grid_shards; run `iaforge grid sync`")
