"""A loopback fake of the Hugging Face Hub for tests: no test may reach the network.

    with FakeHub() as hub:               # binds 127.0.0.1 only; points huggingface_hub at it
        HfApi(token="x").create_repo("me/ia", exist_ok=True)
        ...
        hub.files("me/ia")               # {path: bytes} as of the last commit
        hub.requests                     # every request received, in order (Request records)
        hf_hub_download("me/ia", "adapter_config.json")   # reads back what was committed

Stable API (other tests build on it): FakeHub(lfs_suffixes=(), commit_status=None), .url, .requests (Request:
method, path, headers, body, .header(name)),
.files(repo_id, repo_type="model"), .repos[(repo_type, repo_id)] (a FakeRepo), .collections, .count(method, path_part).

Endpoints (what huggingface_hub 2.4 calls for create_repo / create_commit / create_tag / collections / downloads):
  POST /api/repos/create                               200, or 409 with `url` when it exists
  POST /api/validate-yaml                              {"errors": [], "warnings": []}
  POST /api/{type}s/{repo}/preupload/{rev}             every file "regular" unless its name ends in lfs_suffixes
  POST /{prefix}{repo}.git/info/lfs/objects/batch      LFS batch: upload actions pointing back at this server
  PUT  /lfs-upload/{oid}                               stores an LFS object
  POST /api/{type}s/{repo}/commit/{rev}                NDJSON: header, file (base64), lfsFile (by oid)
  POST /api/{type}s/{repo}/tag/{rev}                   records the tag (409 if it exists)
  GET  /api/{type}s/{repo}[/revision/{rev}]            repo info with siblings
  HEAD/GET /{prefix}{repo}/resolve/{rev}/{path}        the committed bytes, X-Repo-Commit and ETag
  POST /api/collections, POST /api/collections/{slug}/items, GET /api/collections/{slug}

The environment is patched for the duration: `huggingface_hub.constants.ENDPOINT` (read at import time, so
the env var alone does nothing), HF_HUB_OFFLINE off (offline mode blocks loopback too), Xet disabled.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_TYPE_OF_PREFIX = {"datasets": "dataset", "spaces": "space"}


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        """A header by name, case-insensitively (HTTP clients send them lowercased)."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), default)


@dataclass
class FakeRepo:
    repo_id: str
    repo_type: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)   # {"oid", "summary", "paths"}
    tags: dict[str, str] = field(default_factory=dict)             # tag -> commit oid

    @property
    def head(self) -> str:
        return self.commits[-1]["oid"] if self.commits else "0" * 40


class FakeHub:
    def __init__(self, *, lfs_suffixes: tuple[str, ...] = (), commit_status: int | None = None):
        self.lfs_suffixes = tuple(lfs_suffixes)
        # commit_status: answer every commit with this HTTP status (to test failure handling)
        self.commit_status = commit_status
        self.requests: list[Request] = []
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.collections: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._saved: dict[str, Any] = {}
        self.url = ""

    # ---- inspection ------------------------------------------------------------------------------
    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        return dict(self.repos[(repo_type, repo_id)].files)

    def count(self, method: str | None = None, path_part: str = "") -> int:
        return sum(1 for r in self.requests if (method is None or r.method == method) and path_part in r.path)

    # ---- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> "FakeHub":
        import huggingface_hub.constants as C

        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet test output
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                req = Request(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
                with hub._lock:
                    hub.requests.append(req)
                    status, headers, payload = hub._route(req)
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                    headers.setdefault("Content-Type", "application/json")
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", headers.get("Content-Length", str(len(payload))))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

        patch = {"ENDPOINT": self.url, "HUGGINGFACE_CO_URL_TEMPLATE": self.url + "/{repo_id}/resolve/{revision}/{filename}",
                 "HF_HUB_OFFLINE": False, "HF_HUB_DISABLE_XET": True}
        self._saved = {k: getattr(C, k) for k in patch}
        for k, v in patch.items():
            setattr(C, k, v)
        self._saved_env = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                           "HF_HUB_DISABLE_XET")}
        os.environ["HF_ENDPOINT"] = self.url      # for subprocesses (the CLI run as a command)
        os.environ["HF_HUB_DISABLE_XET"] = "1"
        os.environ.pop("HF_HUB_OFFLINE", None)
        os.environ.pop("TRANSFORMERS_OFFLINE", None)
        return self

    def __exit__(self, *exc) -> None:
        import huggingface_hub.constants as C

        for k, v in self._saved.items():
            setattr(C, k, v)
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---- routing ----------------------------------------------------------------------------------
    def _repo(self, repo_type: str, repo_id: str) -> FakeRepo | None:
        return self.repos.get((repo_type, repo_id))

    def _route(self, req: Request) -> tuple[int, dict[str, str], Any]:
        path = unquote(urlsplit(req.path).path)
        m, p = req.method, path
        not_found = (404, {"X-Error-Code": "RepoNotFound"}, {"error": "Repository not found"})

        if m == "POST" and p == "/api/repos/create":
            data = json.loads(req.body or b"{}")
            repo_type = data.get("type") or "model"
            repo_id = f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
            url = f"{self.url}/{_PREFIX[repo_type]}{repo_id}"
            if (repo_type, repo_id) in self.repos:
                return 409, {}, {"error": "You already created this repo", "url": url}
            self.repos[(repo_type, repo_id)] = FakeRepo(repo_id, repo_type, data.get("visibility") == "private"
                                                        or bool(data.get("private")))
            return 200, {}, {"url": url, "name": repo_id}

        if m == "POST" and p == "/api/validate-yaml":
            return 200, {}, {"errors": [], "warnings": []}

        if p.startswith("/api/collections"):
            return self._collections(m, p, req)

        mt = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)/(preupload|commit|tag)/([^/]+)", p)
        if mt:
            repo_type = mt.group(1)[:-1]
            repo = self._repo(repo_type, mt.group(2))
            if repo is None:
                return not_found
            return {"preupload": self._preupload, "commit": self._commit, "tag": self._tag}[mt.group(3)](
                repo, mt.group(4), req)

        mi = re.fullmatch(r"/api/(models|datasets|spaces)/(.+?)(?:/revision/([^/]+))?", p)
        if mi and m == "GET":
            repo = self._repo(mi.group(1)[:-1], mi.group(2))
            if repo is None:
                return not_found
            return 200, {}, {"id": repo.repo_id, "sha": repo.head, "private": repo.private,
                             "siblings": [{"rfilename": f} for f in sorted(repo.files)], "tags": []}

        ml = re.fullmatch(r"/(?:(datasets|spaces)/)?(.+?)\.git/info/lfs/objects/batch", p)
        if ml and m == "POST":
            data = json.loads(req.body)
            objs = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                     "actions": {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}"}}}
                    for o in data.get("objects", []) if o["oid"] not in self.lfs_objects]
            done = [{"oid": o["oid"], "size": o["size"]} for o in data.get("objects", []) if o["oid"] in self.lfs_objects]
            return 200, {"Content-Type": "application/vnd.git-lfs+json"}, {"transfer": "basic", "objects": objs + done}

        mu = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", p)
        if mu and m == "PUT":
            if hashlib.sha256(req.body).hexdigest() != mu.group(1):
                return 400, {}, {"error": "sha256 mismatch"}
            self.lfs_objects[mu.group(1)] = req.body
            return 200, {}, b""

        mr = re.fullmatch(r"/(?:(datasets|spaces)/)?(.+?)/resolve/([^/]+)/(.+)", p)
        if mr and m in ("GET", "HEAD"):
            repo = self._repo(_TYPE_OF_PREFIX.get(mr.group(1) or "", "model"), mr.group(2))
            if repo is None:
                return not_found
            rev = mr.group(3)
            if rev == "main":
                oid = repo.head
            elif rev in repo.tags:
                oid = repo.tags[rev]
            elif any(c["oid"] == rev for c in repo.commits):
                oid = rev
            else:
                return 404, {"X-Error-Code": "RevisionNotFound"}, {"error": "Revision not found"}
            files = self._files_at(repo, oid)
            if mr.group(4) not in files:
                return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": oid}, {"error": "Entry not found"}
            data = files[mr.group(4)]
            return 200, {"X-Repo-Commit": oid, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                         "Content-Type": "application/octet-stream", "Content-Length": str(len(data))}, data

        return 404, {}, {"error": f"fake hub: no route for {m} {p}"}

    def _files_at(self, repo: FakeRepo, oid: str) -> dict[str, bytes]:
        for c in repo.commits:
            if c["oid"] == oid:
                return c["snapshot"]
        return repo.files

    def _preupload(self, repo: FakeRepo, rev: str, req: Request):
        data = json.loads(req.body)
        out = []
        for f in data.get("files", []):
            lfs = f["path"].endswith(self.lfs_suffixes) if self.lfs_suffixes else False
            old = repo.files.get(f["path"])
            out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                        "oid": hashlib.sha1(b"blob %d\0" % len(old) + old).hexdigest() if old is not None else None})
        return 200, {}, {"files": out, "commitOid": repo.head}

    def _commit(self, repo: FakeRepo, rev: str, req: Request):
        if self.commit_status is not None:
            return self.commit_status, {}, {"error": "fake hub: commit refused"}
        files = dict(repo.files)
        header: dict[str, Any] = {}
        paths = []
        for line in req.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                paths.append(value["path"])
            elif key == "lfsFile":
                if value["oid"] not in self.lfs_objects:
                    return 400, {}, {"error": f"LFS object {value['oid']} was never uploaded"}
                files[value["path"]] = self.lfs_objects[value["oid"]]
                paths.append(value["path"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            else:
                return 400, {}, {"error": f"fake hub: unsupported commit key {key}"}
        oid = hashlib.sha1(f"{repo.repo_id}:{len(repo.commits)}:{header.get('summary')}".encode()).hexdigest()
        repo.files = files
        repo.commits.append({"oid": oid, "summary": header.get("summary", ""), "paths": paths, "snapshot": files})
        url = f"{self.url}/{_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{oid}"
        return 200, {}, {"commitUrl": url, "commitOid": oid, "pullRequestUrl": None, "success": True}

    def _tag(self, repo: FakeRepo, rev: str, req: Request):
        tag = json.loads(req.body)["tag"]
        if tag in repo.tags:
            return 409, {}, {"error": "Tag already exists"}
        repo.tags[tag] = repo.head if rev == "main" else rev
        return 200, {}, {}

    def _collection_json(self, slug: str) -> dict[str, Any]:
        c = self.collections[slug]
        return {"slug": slug, "title": c["title"], "owner": {"name": c["namespace"]}, "lastUpdated":
                "2026-01-01T00:00:00.000Z", "position": 0, "private": c["private"], "theme": "blue", "upvotes": 0,
                "description": c.get("description"),
                "items": [{"_id": f"item{i}", "id": it["id"], "type": it["type"], "position": i}
                          for i, it in enumerate(c["items"])]}

    def _collections(self, m: str, p: str, req: Request):
        if m == "POST" and p == "/api/collections":
            data = json.loads(req.body)
            slug = f"{data['namespace']}/{re.sub(r'[^a-z0-9]+', '-', data['title'].lower()).strip('-')}-0123456789abcdef"
            if slug in self.collections:
                return 409, {}, {"error": "exists", "slug": slug}
            self.collections[slug] = {**data, "items": []}
            return 200, {}, self._collection_json(slug)
        mi = re.fullmatch(r"/api/collections/(.+?)/items", p)
        if m == "POST" and mi:
            slug = mi.group(1)
            if slug not in self.collections:
                return 404, {}, {"error": "Collection not found"}
            item = json.loads(req.body)["item"]
            if any(it["id"] == item["id"] and it["type"] == item["type"] for it in self.collections[slug]["items"]):
                return 409, {}, {"error": "Item already in collection"}
            self.collections[slug]["items"].append(item)
            return 200, {}, self._collection_json(slug)
        mg = re.fullmatch(r"/api/collections/(.+)", p)
        if m == "GET" and mg and mg.group(1) in self.collections:
            return 200, {}, self._collection_json(mg.group(1))
        return 404, {}, {"error": "Collection not found"}
