"""`iaforge publish --manifest publish/manifest.json --push`: upload what the `publish` stage staged.

Nothing is sent unless both `--push` and HF_TOKEN are given. Before any request, every staged file is re-hashed
against the manifest; then, per repo: create_repo(exist_ok=True), ONE create_commit of exactly the manifest's
files (upload_folder may split a large folder into several commits), and create_tag on that commit. A receipt
records the commit ids and URLs. The token is passed to huggingface_hub only: it is never printed or written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from iaforge.core.errors import IaforgeError, ValidationError
from iaforge.core.fsio import read_json, write_json
from iaforge.publish.staging import check_repo_file, sha256_file


class PublishError(IaforgeError):
    pass


def load_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValidationError(path, "<file>", "manifest not found; run `dvc repro publish` first")
    try:
        manifest = read_json(path)
    except ValueError as exc:
        raise ValidationError(path, "<file>", f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("repos"), list):
        raise ValidationError(path, "repos", "must be a list of repos")
    for i, repo in enumerate(manifest["repos"]):
        for key in ("repo_id", "repo_type", "private", "tag", "dir", "files"):
            if key not in repo:
                raise ValidationError(path, f"repos[{i}].{key}", "required key is missing")
        if repo["repo_type"] not in ("model", "dataset"):
            raise ValidationError(path, f"repos[{i}].repo_type", "must be model or dataset")
    return manifest


def verify(manifest_path: str | Path, manifest: dict[str, Any]) -> list[tuple[dict[str, Any], list[tuple[str, Path]]]]:
    """Every manifest file, re-hashed: [(repo, [(path_in_repo, local file)])]. Raises on the first mismatch."""
    root = Path(manifest_path).parent
    out = []
    for repo in manifest["repos"]:
        rdir = root / repo["dir"]
        files = []
        for f in repo["files"]:
            check_repo_file(f["path"], str(manifest_path))
            local = rdir / f["path"]
            if not local.is_file():
                raise ValidationError(local, "<file>", f"staged file of {repo['repo_id']} is missing; rerun `dvc repro publish`")
            if local.stat().st_size != f["size"] or sha256_file(local) != f["sha256"]:
                raise ValidationError(local, "sha256", f"does not match the manifest ({repo['repo_id']}); the staging "
                                                       "folder changed after `publish` ran: rerun `dvc repro publish`")
            files.append((f["path"], local))
        out.append((repo, files))
    return out


def plan_lines(manifest: dict[str, Any]) -> list[str]:
    lines = []
    for repo in manifest["repos"]:
        size = sum(f["size"] for f in repo["files"])
        vis = "private" if repo["private"] else "public"
        lines.append(f"{repo['repo_type']:7s} {repo['repo_id']}  ({vis}, tag {repo['tag']}, "
                     f"{len(repo['files'])} files, {size / 1e6:.1f} MB)")
    return lines


def push(manifest_path: str | Path, *, token: str, receipt_path: str | Path, collection: bool = True,
         log=print) -> dict[str, Any]:
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    manifest = load_manifest(manifest_path)
    checked = verify(manifest_path, manifest)  # before any request
    if constants.HF_HUB_OFFLINE:
        raise PublishError("HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: unset it to push; nothing was sent")
    api = HfApi(endpoint=constants.ENDPOINT, token=token)
    receipt: dict[str, Any] = {"endpoint": constants.ENDPOINT, "repos": [], "collection": None}
    try:
        for repo, files in checked:
            rid, rtype = repo["repo_id"], repo["repo_type"]
            url = api.create_repo(rid, repo_type=rtype, private=repo["private"], exist_ok=True)
            ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(local)) for p, local in files]
            info = api.create_commit(rid, repo_type=rtype, operations=ops,
                                     commit_message=f"iaforge publish {repo['tag']}",
                                     commit_description=f"{len(ops)} files staged by `dvc repro publish`")
            api.create_tag(rid, repo_type=rtype, tag=repo["tag"], revision=info.oid, exist_ok=True)
            receipt["repos"].append({"repo_id": rid, "repo_type": rtype, "url": str(url), "commit": info.oid,
                                     "commit_url": info.commit_url, "tag": repo["tag"], "files": len(ops)})
            log(f"pushed {rtype} {rid} @ {info.oid[:12]} (tag {repo['tag']})")
        title = manifest.get("collection")
        if collection and title:
            coll = api.create_collection(title=title, namespace=manifest.get("namespace"),
                                         private=all(r["private"] for r, _ in checked), exists_ok=True)
            for r in receipt["repos"]:
                api.add_collection_item(coll.slug, item_id=r["repo_id"], item_type=r["repo_type"], exists_ok=True)
            receipt["collection"] = {"slug": coll.slug, "title": title}
            log(f"collection {coll.slug}")
    except HfHubHTTPError as exc:
        # The request and status only: huggingface_hub's message never carries the token, but keep it short.
        status = exc.response.status_code if exc.response is not None else "?"
        write_json(receipt_path, {**receipt, "error": f"HTTP {status}"})
        first = (str(exc).splitlines() or [""])[0][:200].replace(token, "***")
        raise PublishError(f"the Hub refused a request (HTTP {status}: {first}); "
                           f"what was done so far is in {receipt_path}") from None
    write_json(receipt_path, receipt)
    return receipt


def token_from_env() -> str | None:
    tok = os.environ.get("HF_TOKEN", "").strip()
    return tok or None
