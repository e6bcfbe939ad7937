"""A small in-memory server that speaks the parts of the Hugging Face Hub protocol that `huggingface_hub` and
`transformers` use to push and load models, for tests on 127.0.0.1 (no network, no mocks of the HTTP client).

`huggingface_hub` talks HTTP through its own client (httpx), which request-level mocks do not intercept, so the
tests start this server on a free port and point the clients at it with `HF_ENDPOINT` (read once when
`huggingface_hub` is imported: set it in the environment of a fresh subprocess).

What it implements (model repos only):

- `POST /api/repos/create` (409 when the repo exists), `GET /api/whoami-v2`, `GET /api/agent-harnesses` (an empty
  registry: huggingface_hub asks for it once a day to fill its user agent)
- `POST /api/models/{repo}/preupload/{rev}` (upload mode per file: LFS for weights and binary or large files)
- `POST /{repo}.git/info/lfs/objects/batch`, then `PUT`/`POST` on the upload and verify URLs it hands out
- `POST /api/models/{repo}/commit/{rev}` (NDJSON: header, file, lfsFile, deletedFile, deletedFolder)
- `POST /api/models/{repo}/branch/{branch}`, `GET /api/models/{repo}/refs`, `GET /api/models/{repo}/commits/{rev}`
- `POST /api/validate-yaml` (the model-card metadata checks of the Hub that matter here, see `validate_metadata`)
- `GET /api/models/{repo}[/revision/{rev}]`, `GET /api/models/{repo}/tree/{rev}[/{path}]`,
  `POST /api/models/{repo}/paths-info/{rev}`
- `HEAD`/`GET /{repo}/resolve/{rev}/{path}` with `X-Repo-Commit`, `ETag` (git blob id), `X-Linked-Etag` and
  `X-Linked-Size` for LFS files, and `X-Error-Code: EntryNotFound` / `RevisionNotFound` / `RepoNotFound` on 404.

Every request is logged (`HubState.requests`); requests the server does not know are answered 404 and kept in
`HubState.unknown_requests`, so a test can show what a new client version started to call. Writes need the token
`TEST_TOKEN` (401 otherwise, as the Hub answers a bad token). `HubState.add_fault` makes chosen requests fail with a
chosen status, for the tests of failed pushes.

Run it by hand with `python tests/hub_server.py [port]`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

TEST_TOKEN = "hf_local_test_token"
TEST_USER = "hisr-tester"

GITATTRIBUTES = "\n".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text"
    for pattern in ("*.bin", "*.safetensors", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.onnx", "*.pkl", "*.npy", "*.zip")
) + "\n"
LFS_SUFFIXES = (".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".h5", ".onnx", ".pkl", ".npy", ".zip")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024

# The pipeline tags the Hub accepts (the subset of its list that a text model can carry, plus the common others).
PIPELINE_TAGS = {
    "text-classification", "token-classification", "table-question-answering", "question-answering",
    "zero-shot-classification", "translation", "summarization", "feature-extraction", "text-generation",
    "fill-mask", "sentence-similarity", "text-ranking", "image-classification", "object-detection",
    "automatic-speech-recognition", "audio-classification", "image-text-to-text", "other",
}  # fmt: skip
LICENSES = {
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "cc-by-4.0", "cc-by-sa-4.0",
    "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc0-1.0", "bsd-3-clause", "gpl-3.0", "lgpl-3.0", "agpl-3.0", "unlicense",
    "llama2", "llama3", "gemma", "other", "unknown",
}  # fmt: skip
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class StoredFile:
    content: bytes
    lfs: bool

    @property
    def blob_id(self) -> str:
        if self.lfs:  # git stores the pointer file
            return git_blob_id(self.pointer)
        return git_blob_id(self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.content)}\n"
        ).encode()


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    description: str
    files: dict[str, StoredFile]
    operations: list[str]  # "+path", "-path": what this commit changed
    date: str

    def to_json(self) -> dict:
        return {"id": self.oid, "title": self.title, "message": self.description, "date": self.date,
                "authors": [{"user": TEST_USER}]}  # fmt: skip


@dataclass
class Repo:
    repo_id: str
    private: bool
    created_at: str
    branches: dict[str, str] = field(default_factory=dict)  # name -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)  # sha256 -> content

    def resolve(self, revision: str) -> Commit | None:
        revision = unquote(revision)
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        return self.commits.get(revision)

    def history(self, branch: str = "main") -> list[Commit]:
        """Commits of ``branch``, oldest first."""
        commits, oid = [], self.branches.get(branch)
        while oid is not None:
            commits.append(self.commits[oid])
            oid = self.commits[oid].parent
        return commits[::-1]


@dataclass
class Fault:
    method: str
    path: re.Pattern
    status: int
    message: str
    remaining: int | None


class HubState:
    """Repos, request log and injected faults of one server."""

    def __init__(self):
        self.lock = threading.RLock()
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.unknown_requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.valid_tokens = {TEST_TOKEN}

    def add_fault(self, method: str, path_regex: str, status: int = 500, message: str = "Internal Error", times=None):
        """Answer requests whose method is ``method`` and whose path matches ``path_regex`` with ``status``.
        ``times=None`` fails every matching request; an int fails only that many."""
        with self.lock:
            self.faults.append(Fault(method.upper(), re.compile(path_regex), status, message, times))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.path.search(path) and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None

    def create_repo(self, repo_id: str, private: bool = False) -> Repo:
        now = _now()
        repo = Repo(repo_id=repo_id, private=private, created_at=now)
        initial = Commit(
            oid=_new_oid(), parent=None, title="initial commit", description="",
            files={".gitattributes": StoredFile(GITATTRIBUTES.encode(), lfs=False)}, operations=["+.gitattributes"],
            date=now,
        )  # fmt: skip
        repo.commits[initial.oid] = initial
        repo.branches["main"] = initial.oid
        self.repos[repo_id] = repo
        return repo


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm each response would wait for the client's
    # delayed ACK (40 ms on Linux), which makes a load of ~15 requests take a second.
    disable_nagle_algorithm = True
    server: HubServer

    # ------------------------------------------------------------------ plumbing
    def log_message(self, format, *args):  # keep pytest output clean
        pass

    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base_url(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type="application/json", headers=None, head=False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", f"local-{uuid.uuid4().hex[:12]}")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)
        self.state.requests.append((self.command, urlsplit(self.path).path, status))

    def _json(self, status: int, payload: Any, headers=None, head=False):
        self._send(status, json.dumps(payload).encode(), headers=headers, head=head)

    def _error(self, status: int, message: str, code: str | None = None, head=False):
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers=headers, head=head)

    def _token_ok(self) -> bool:
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[len("Bearer ") :] in self.state.valid_tokens

    def _require_token(self) -> bool:
        if self._token_ok():
            return True
        if self.headers.get("Authorization"):
            self._error(401, "Invalid credentials in Authorization header")
        else:
            self._error(401, "Invalid username or password.")
        return False

    def _repo(self, repo_id: str, head=False) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo.private and not self._token_ok()):
            self._error(404, "Repository not found", "RepoNotFound", head=head)
            return None
        return repo

    def _commit(self, repo: Repo, revision: str, head=False) -> Commit | None:
        commit = repo.resolve(revision)
        if commit is None:
            self._error(404, f"Invalid rev id: {unquote(revision)}", "RevisionNotFound", head=head)
        return commit

    # ------------------------------------------------------------------ dispatch
    ROUTES = [
        ("GET", r"^/api/whoami-v2$", "whoami"),
        ("GET", r"^/api/agent-harnesses$", "agent_harnesses"),
        ("POST", r"^/api/repos/create$", "create_repo"),
        ("POST", r"^/api/validate-yaml$", "validate_yaml"),
        ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)$", "preupload"),
        ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)$", "commit"),
        ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/branch/(?P<branch>[^/]+)$", "create_branch"),
        ("GET", r"^/api/models/(?P<repo>[^/]+/[^/]+)/refs$", "refs"),
        ("GET", r"^/api/models/(?P<repo>[^/]+/[^/]+)/commits/(?P<rev>[^/]+)$", "list_commits"),
        ("GET", r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$", "tree"),
        ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)$", "paths_info"),
        ("GET", r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$", "model_info"),
        ("POST", r"^/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$", "lfs_batch"),
        ("PUT", r"^/__lfs_upload/(?P<repo>[^/]+/[^/]+)/(?P<oid>[0-9a-f]{64})$", "lfs_upload"),
        ("POST", r"^/__lfs_verify/(?P<repo>[^/]+/[^/]+)$", "lfs_verify"),
        ("HEAD", r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
        ("GET", r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve"),
    ]
    _compiled = [(method, re.compile(pattern), name) for method, pattern, name in ROUTES]

    def _dispatch(self):
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        fault = self.state.take_fault(self.command, path)
        if fault is not None:
            self._read_body()
            self._error(fault.status, fault.message, head=self.command == "HEAD")
            return
        for method, pattern, name in self._compiled:
            match = pattern.match(path)
            if method == self.command and match:
                try:
                    with self.state.lock:
                        getattr(self, f"do_{name}")(query=query, **{k: v for k, v in match.groupdict().items()})
                except Exception as exc:  # a bug in the server must show up as a 500 the client reports
                    self._error(500, f"test hub server error: {type(exc).__name__}: {exc}")
                return
        self._read_body()
        self.state.unknown_requests.append((self.command, self.path))
        self._error(404, f"Unknown endpoint {self.command} {path} (tests/hub_server.py does not implement it)")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _dispatch  # noqa: N815

    # ------------------------------------------------------------------ endpoints
    def do_whoami(self, query):
        if not self._require_token():
            return
        self._json(200, {"type": "user", "name": TEST_USER, "fullname": "HiSR Tester", "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})  # fmt: skip

    def do_agent_harnesses(self, query):
        # huggingface_hub fetches this registry (at most daily) to name the calling AI agent in its user agent.
        self._json(200, {"standardEnvVars": [], "harnesses": {}})

    def do_create_repo(self, query):
        body = json.loads(self._read_body() or b"{}")
        if not self._require_token():
            return
        if body.get("type", "model") not in (None, "model"):
            self._error(400, "This test server only holds model repos")
            return
        name, organization = body.get("name"), body.get("organization") or TEST_USER
        repo_id = f"{organization}/{name}"
        if not name or not REPO_ID.match(repo_id):
            self._error(400, f"Invalid repo name {repo_id!r}")
            return
        if repo_id in self.state.repos:
            self._json(409, {"error": "You already created this model repo", "url": f"{self.base_url}/{repo_id}"},
                       headers={"X-Error-Message": "You already created this model repo"})  # fmt: skip
            return
        self.state.create_repo(repo_id, private=body.get("visibility") == "private" or bool(body.get("private")))
        self._json(200, {"url": f"{self.base_url}/{repo_id}", "name": repo_id, "id": uuid.uuid4().hex})

    def do_validate_yaml(self, query):
        body = json.loads(self._read_body() or b"{}")
        errors, warnings = validate_card(body.get("content", ""))
        payload = {"errors": [{"message": m} for m in errors], "warnings": [{"message": m} for m in warnings]}
        self._json(400 if errors else 200, payload)

    def do_preupload(self, query, repo, rev):
        body = json.loads(self._read_body() or b"{}")
        if not self._require_token() or (found := self._repo(repo)) is None:
            return
        commit = found.resolve(rev)  # a new branch has no commit yet: every file is new
        files = []
        for entry in body.get("files", []):
            sample = base64.b64decode(entry.get("sample", ""))
            lfs = _wants_lfs(entry["path"], entry.get("size", 0), sample)
            existing = commit.files.get(entry["path"]) if commit else None
            oid = None
            if existing is not None:
                oid = existing.sha256 if lfs else existing.blob_id
            files.append({"path": entry["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": oid})  # fmt: skip
        self._json(200, {"files": files, "commitOid": commit.oid if commit else None})

    def do_lfs_batch(self, query, repo):
        body = json.loads(self._read_body() or b"{}")
        if not self._require_token() or (found := self._repo(repo)) is None:
            return
        objects = []
        for obj in body.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in found.lfs_objects:
                entry["actions"] = {
                    "upload": {"href": f"{self.base_url}/__lfs_upload/{repo}/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self.base_url}/__lfs_verify/{repo}", "header": {}},
                }
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"})

    def do_lfs_upload(self, query, repo, oid):
        content = self._read_body()
        if (found := self._repo(repo)) is None:
            return
        if hashlib.sha256(content).hexdigest() != oid:
            self._error(400, f"Uploaded content does not match sha256 {oid}")
            return
        found.lfs_objects[oid] = content
        self._send(200, b"")

    def do_lfs_verify(self, query, repo):
        body = json.loads(self._read_body() or b"{}")
        if (found := self._repo(repo)) is None:
            return
        if body.get("oid") not in found.lfs_objects:
            self._error(404, f"LFS object {body.get('oid')} was not uploaded")
            return
        self._json(200, {"success": True})

    def do_commit(self, query, repo, rev):
        raw = self._read_body()
        if not self._require_token() or (found := self._repo(repo)) is None:
            return
        branch = unquote(rev)
        if branch not in found.branches:
            self._error(404, f"Invalid rev id: {branch} (a commit goes to a branch)", "RevisionNotFound")
            return
        parent = found.commits[found.branches[branch]]
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            self._error(400, "The first NDJSON line must be the header")
            return
        header = lines[0]["value"]
        if header.get("parentCommit") and header["parentCommit"] != parent.oid:
            self._error(412, f"Parent commit {header['parentCommit']} is not the head of {branch}")
            return
        files, operations = dict(parent.files), []
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value", {})
            path = value.get("path", "")
            if key == "file":
                if value.get("encoding", "base64") != "base64":
                    self._error(400, f"Unsupported encoding {value.get('encoding')!r}")
                    return
                files[path] = StoredFile(base64.b64decode(value["content"]), lfs=False)
                operations.append(f"+{path}")
            elif key == "lfsFile":
                content = found.lfs_objects.get(value.get("oid"))
                if content is None:
                    self._error(422, f"LFS object {value.get('oid')} for {path} was never uploaded")
                    return
                files[path] = StoredFile(content, lfs=True)
                operations.append(f"+{path}")
            elif key == "deletedFile":
                if path not in files:
                    self._error(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    return
                del files[path]
                operations.append(f"-{path}")
            elif key == "deletedFolder":
                prefix = path.rstrip("/") + "/"
                for name in [name for name in files if name.startswith(prefix)]:
                    del files[name]
                    operations.append(f"-{name}")
            else:
                self._error(400, f"Unsupported commit operation {key!r}")
                return
        if "+README.md" in operations:  # the Hub refuses a commit whose model card has invalid metadata
            errors, _ = validate_card(files["README.md"].content.decode("utf-8", errors="replace"))
            if errors:
                self._json(400, {"error": "Invalid metadata in README.md: " + "; ".join(errors)})
                return
        commit = Commit(
            oid=_new_oid(), parent=parent.oid, title=header.get("summary", ""), description=header.get("description", ""),
            files=files, operations=operations, date=_now(),
        )  # fmt: skip
        found.commits[commit.oid] = commit
        found.branches[branch] = commit.oid
        self._json(200, {"success": True, "commitOid": commit.oid, "commitUrl": f"{self.base_url}/{repo}/commit/{commit.oid}",
                         "pullRequestUrl": None})  # fmt: skip

    def do_create_branch(self, query, repo, branch):
        body = json.loads(self._read_body() or b"{}")
        if not self._require_token() or (found := self._repo(repo)) is None:
            return
        branch = unquote(branch)
        if branch in found.branches:
            self._error(409, f"Reference already exists: refs/heads/{branch}")
            return
        start = found.resolve(body.get("startingPoint") or "main")
        if start is None:
            self._error(404, "Invalid starting point", "RevisionNotFound")
            return
        found.branches[branch] = start.oid
        self._json(200, {})

    def do_refs(self, query, repo):
        if (found := self._repo(repo)) is None:
            return
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": oid} for n, oid in found.branches.items()]
        self._json(200, {"branches": branches, "tags": [], "converts": []})

    def do_list_commits(self, query, repo, rev):
        if (found := self._repo(repo)) is None or (commit := self._commit(found, rev)) is None:
            return
        chain, oid = [], commit.oid
        while oid is not None:
            chain.append(found.commits[oid].to_json())
            oid = found.commits[oid].parent
        self._json(200, chain)

    def _tree_entry(self, path: str, stored: StoredFile) -> dict:
        entry = {"type": "file", "oid": stored.blob_id, "size": len(stored.content), "path": path}
        if stored.lfs:
            entry["lfs"] = {"oid": stored.sha256, "size": len(stored.content), "pointerSize": len(stored.pointer)}
        return entry

    def do_tree(self, query, repo, rev, path=None):
        if (found := self._repo(repo)) is None or (commit := self._commit(found, rev)) is None:
            return
        prefix = (unquote(path).strip("/") + "/") if path else ""
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries, folders = [], set()
        for name in sorted(commit.files):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            parts = rest.split("/")
            for depth in range(1, len(parts)):  # the folders on the way
                folder = prefix + "/".join(parts[:depth])
                if (recursive or depth == 1) and folder not in folders:
                    folders.add(folder)
                    entries.append({"type": "directory", "oid": git_blob_id(folder.encode()), "size": 0, "path": folder})
            if recursive or len(parts) == 1:
                entries.append(self._tree_entry(name, commit.files[name]))
        if prefix and not entries:
            self._error(404, f"{prefix} does not exist on {rev}", "EntryNotFound")
            return
        self._json(200, entries)

    def do_paths_info(self, query, repo, rev):
        raw = self._read_body()
        if (found := self._repo(repo)) is None or (commit := self._commit(found, rev)) is None:
            return
        try:
            body = json.loads(raw)
            paths = body.get("paths", [])
        except json.JSONDecodeError:  # form-encoded
            paths = parse_qs(raw.decode()).get("paths", [])
        self._json(200, [self._tree_entry(p, commit.files[p]) for p in paths if p in commit.files])

    def do_model_info(self, query, repo, rev=None):
        if (found := self._repo(repo)) is None or (commit := self._commit(found, rev or "main")) is None:
            return
        card = _card_metadata(commit.files.get("README.md"))
        config = {}
        if "config.json" in commit.files:
            try:
                config = json.loads(commit.files["config.json"].content)
            except json.JSONDecodeError:
                config = {}
        self._json(200, {
            "_id": uuid.uuid5(uuid.NAMESPACE_URL, repo).hex, "id": repo, "modelId": repo, "author": repo.split("/")[0],
            "sha": commit.oid, "lastModified": commit.date, "createdAt": found.created_at, "private": found.private,
            "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": list(card.get("tags") or []),
            "library_name": card.get("library_name"), "pipeline_tag": card.get("pipeline_tag"), "cardData": card,
            "config": {k: config[k] for k in ("architectures", "model_type", "auto_map") if k in config},
            "siblings": [{"rfilename": name} for name in sorted(commit.files)],
        })  # fmt: skip

    def do_resolve(self, query, repo, rev, path):
        head = self.command == "HEAD"
        if (found := self._repo(repo, head=head)) is None or (commit := self._commit(found, rev, head=head)) is None:
            return
        path = unquote(path)
        stored = commit.files.get(path)
        if stored is None:
            self._error(404, "Entry not found", "EntryNotFound", head=head)
            return
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{stored.blob_id}"', "Accept-Ranges": "bytes"}
        if stored.lfs:
            headers.update({"X-Linked-Etag": f'"{stored.sha256}"', "X-Linked-Size": str(len(stored.content))})
        self._send(200, stored.content, content_type="application/octet-stream", headers=headers, head=head)


class HubServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` with a `HubState`; `url` is what `HF_ENDPOINT` must be set to."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), HubRequestHandler)
        self.state = HubState()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for the "server down" tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------- card validation
def _split_front_matter(content: str) -> tuple[str | None, str]:
    match = re.match(r"^\s*---\s*\n(.*?)\n---\s*(\n|$)", content, flags=re.DOTALL)
    if match is None:
        return None, content
    return match.group(1), content[match.end() :]


def _card_metadata(stored: StoredFile | None) -> dict:
    if stored is None:
        return {}
    front, _ = _split_front_matter(stored.content.decode("utf-8", errors="replace"))
    try:
        data = yaml.safe_load(front) if front else {}
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def validate_card(content: str) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` for a README.md, as the Hub's `/api/validate-yaml` reports them."""
    front, _ = _split_front_matter(content)
    if front is None or not front.strip():
        return [], ["Empty or missing yaml metadata in repo card"]
    try:
        metadata = yaml.safe_load(front)
    except yaml.YAMLError as exc:
        return [f"Invalid YAML in the metadata block: {exc}"], []
    if not isinstance(metadata, dict):
        return [f"The metadata block must be a mapping, got {type(metadata).__name__}"], []
    return validate_metadata(metadata), []


def validate_metadata(metadata: dict) -> list[str]:
    """The Hub's model-card metadata rules for the fields a model card of this library uses."""
    errors: list[str] = []

    def strings(key: str, allow_single: bool = True) -> list[str] | None:
        value = metadata.get(key)
        if value is None:
            return None
        if isinstance(value, str) and allow_single:
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(f'"{key}" must be a string or a list of strings')
            return None
        return value

    if "license" in metadata and metadata["license"] not in LICENSES:
        errors.append(f'"license" must be one of the Hub licenses, got {metadata["license"]!r}')
    strings("language")
    if "library_name" in metadata and not isinstance(metadata["library_name"], str):
        errors.append('"library_name" must be a string')
    if "pipeline_tag" in metadata and metadata["pipeline_tag"] not in PIPELINE_TAGS:
        errors.append(f'"pipeline_tag" must be a valid pipeline tag, got {metadata["pipeline_tag"]!r}')
    strings("tags", allow_single=False)
    for name in strings("datasets") or []:
        if not REPO_ID.match(name):
            errors.append(f'"datasets" must hold dataset ids, got {name!r}')
    for name in strings("base_model") or []:
        if not REPO_ID.match(name):
            errors.append(f'"base_model" must hold model ids (org/name), got {name!r}')
    widget = metadata.get("widget")
    if widget is not None:
        if not isinstance(widget, list):
            errors.append('"widget" must be a list of examples')
        else:
            for i, example in enumerate(widget):
                if not isinstance(example, dict) or not isinstance(example.get("text"), str):
                    errors.append(f'"widget[{i}]" must be a mapping with a "text" string')
    model_index = metadata.get("model-index")
    if model_index is not None:
        errors.extend(_validate_model_index(model_index))
    return errors


def _validate_model_index(model_index: Any) -> list[str]:
    if not isinstance(model_index, list) or not model_index:
        return ['"model-index" must be a non-empty list']
    errors = []
    for i, entry in enumerate(model_index):
        where = f"model-index[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            errors.append(f'"{where}.name" must be a string')
            continue
        results = entry.get("results")
        if not isinstance(results, list):
            errors.append(f'"{where}.results" must be a list')
            continue
        for j, result in enumerate(results):
            here = f"{where}.results[{j}]"
            task, dataset, metrics = (result or {}).get("task"), (result or {}).get("dataset"), (result or {}).get("metrics")
            if not isinstance(task, dict) or not isinstance(task.get("type"), str):
                errors.append(f'"{here}.task.type" must be a string')
            if not isinstance(dataset, dict) or not all(isinstance(dataset.get(k), str) for k in ("name", "type")):
                errors.append(f'"{here}.dataset" needs "name" and "type" strings')
            if not isinstance(metrics, list) or not metrics:
                errors.append(f'"{here}.metrics" must be a non-empty list')
                continue
            for k, metric in enumerate(metrics):
                if not isinstance(metric, dict) or not isinstance(metric.get("type"), str):
                    errors.append(f'"{here}.metrics[{k}].type" must be a string')
                elif not isinstance(metric.get("value"), (int, float, str)) or isinstance(metric.get("value"), bool):
                    errors.append(f'"{here}.metrics[{k}].value" must be a number or a string')
    return errors


def _wants_lfs(path: str, size: int, sample: bytes) -> bool:
    return path.endswith(LFS_SUFFIXES) or size >= LFS_SIZE_THRESHOLD or b"\0" in sample


def _new_oid() -> str:
    return hashlib.sha1(uuid.uuid4().bytes).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


if __name__ == "__main__":
    import sys

    server = HubServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(f"HF_ENDPOINT={server.url} HF_TOKEN={TEST_TOKEN} HF_HUB_DISABLE_XET=1", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
