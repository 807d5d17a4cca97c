"""A small stand-in for the Hugging Face Hub on 127.0.0.1, for push tests.

It serves exactly the endpoints huggingface_hub 2.4 calls for ``create_repo``,
``repo_info``, ``create_branch``, ``list_repo_tree`` and ``create_commit`` (with
``/api/validate-yaml``, ``preupload``, the legacy LFS batch/upload/verify protocol and
the NDJSON ``commit`` endpoint), keeps what arrives, and can inject 5xx errors.
Xet uploads are a separate storage protocol; tests that want LFS content uploads set
``huggingface_hub.constants.HF_HUB_DISABLE_XET`` so the client uses the LFS path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

TOKEN = "hf_" + "T" * 34
REPO_RE = r"(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)"


@dataclass
class Commit:
    repo: str
    revision: str
    summary: str
    files: dict[str, bytes]  # path -> content (after resolving LFS pointers)
    lfs_paths: list[str]
    deleted: list[str]
    pr: int | None = None


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    branches: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {".gitattributes": b"*.parquet filter=lfs\n"}})
    prs: list[str] = field(default_factory=list)


class FakeHub:
    def __init__(self, upload_mode: str = "auto"):
        # "auto": parquet and large files go LFS, text inline (like the Hub); "regular": all inline.
        self.upload_mode = upload_mode
        self.repos: dict[tuple[str, str], Repo] = {}
        self.commits: list[Commit] = []
        self.lfs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.failures: list[list] = []  # [method, path regex, remaining, status]
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, path_regex: str, times: int = 1, status: int = 500) -> None:
        """The next ``times`` matching requests answer ``status``."""
        self.failures.append([method, re.compile(path_regex), times, status])

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def count(self, method: str, path_regex: str) -> int:
        rx = re.compile(path_regex)
        return sum(1 for m, p in self.requests if m == method and rx.search(p))


def _handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        # ------------------------------------------------------------ plumbing
        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, payload=None) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {TOKEN}"

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            path, query = url.path, parse_qs(url.query)
            body = self._body() if method in ("POST", "PUT") else b""
            with hub.lock:
                hub.requests.append((method, path))
                for f in hub.failures:
                    if f[0] == method and f[1].search(path) and f[2] > 0:
                        f[2] -= 1
                        return self._send(f[3], {"error": "injected failure"})
            for verb, rx, fn in ROUTES:
                m = re.fullmatch(rx, path)
                if verb == method and m:
                    if fn.__name__ not in ("lfs_put",) and not self._authorized():
                        return self._send(401, {"error": "Invalid credentials"})
                    return fn(self, m, query, body)
            self._send(404, {"error": f"no route {method} {path}"})

        def do_GET(self):
            self._dispatch("GET")

        def do_POST(self):
            self._dispatch("POST")

        def do_PUT(self):
            self._dispatch("PUT")

        # ------------------------------------------------------------ endpoints
        def whoami(self, m, q, body):
            self._send(200, {"type": "user", "name": "tester", "auth": {"accessToken": {"role": "write"}}})

        def create_repo(self, m, q, body):
            p = json.loads(body)
            repo_type = p.get("type") or "model"
            repo_id = f"{p['organization']}/{p['name']}" if p.get("organization") else f"tester/{p['name']}"
            key = (repo_type, repo_id)
            prefix = "" if repo_type == "model" else f"{repo_type}s/"
            url = f"{hub.url}/{prefix}{repo_id}"
            if key in hub.repos:  # the Hub's 409 carries the url too; the client reads it
                return self._send(409, {"error": "You already created this repo", "url": url})
            hub.repos[key] = Repo(repo_type, repo_id, private=p.get("visibility") == "private")
            self._send(200, {"url": url, "name": repo_id})

        def _repo(self, m) -> Repo | None:
            repo = hub.repos.get((m["type"], m["repo"]))
            if repo is None:
                self._send(404, {"error": "Repository not found"})
            return repo

        def repo_info(self, m, q, body):
            if (repo := self._repo(m)) is not None:
                self._send(200, {"id": repo.repo_id, "private": repo.private, "sha": "0" * 40})

        def validate_yaml(self, m, q, body):
            self._send(200, {"errors": [], "warnings": []})

        def preupload(self, m, q, body):
            if self._repo(m) is None:
                return
            files = []
            for f in json.loads(body)["files"]:
                lfs = hub.upload_mode == "auto" and (f["path"].endswith(".parquet") or f["size"] > 10_000_000)
                files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                              "shouldIgnore": False, "oid": None})
            self._send(200, {"files": files})

        def lfs_batch(self, m, q, body):
            p = json.loads(body)
            objects = [{"oid": o["oid"], "size": o["size"], "authenticated": True,
                        "actions": {"upload": {"href": f"{hub.url}/lfs-upload/{o['oid']}"},
                                    "verify": {"href": f"{hub.url}/lfs-verify"}}}
                       for o in p["objects"]]
            self._send(200, {"transfer": "basic", "objects": objects})

        def lfs_put(self, m, q, body):
            if hashlib.sha256(body).hexdigest() != m["oid"]:
                return self._send(400, {"error": "sha256 mismatch"})
            hub.lfs[m["oid"]] = body
            self._send(200, {})

        def lfs_verify(self, m, q, body):
            p = json.loads(body)
            ok = p["oid"] in hub.lfs and len(hub.lfs[p["oid"]]) == p["size"]
            self._send(200 if ok else 404, {} if ok else {"error": "object not uploaded"})

        def create_branch(self, m, q, body):
            if (repo := self._repo(m)) is None:
                return
            branch = unquote(m["branch"])
            if branch in repo.branches:
                return self._send(409, {"error": "Branch already exists"})
            start = (json.loads(body or b"{}") or {}).get("startingPoint") or "main"
            repo.branches[branch] = dict(repo.branches[start])
            self._send(200, {})

        def tree(self, m, q, body):
            if (repo := self._repo(m)) is None:
                return
            rev = unquote(m["rev"])
            if rev not in repo.branches:
                return self._send(404, {"error": "Revision not found"}, )
            self._send(200, [{"type": "file", "path": p, "size": len(c), "oid": hashlib.sha1(c).hexdigest()}
                             for p, c in sorted(repo.branches[rev].items())])

        def commit(self, m, q, body):
            if (repo := self._repo(m)) is None:
                return
            rev = unquote(m["rev"])
            if rev not in repo.branches:
                return self._send(404, {"error": f"Invalid rev id: {rev}"})
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header = lines[0]["value"]
            files, lfs_paths, deleted = {}, [], []
            for line in lines[1:]:
                v = line["value"]
                if line["key"] == "file":
                    files[v["path"]] = base64.b64decode(v["content"])
                elif line["key"] == "lfsFile":
                    if v["oid"] not in hub.lfs:
                        return self._send(422, {"error": f"LFS object {v['oid']} missing"})
                    files[v["path"]] = hub.lfs[v["oid"]]
                    lfs_paths.append(v["path"])
                elif line["key"] in ("deletedFile", "deletedFolder"):
                    deleted.append(v["path"])
            pr = None
            if q.get("create_pr") == ["1"]:
                repo.prs.append(rev)
                pr = len(repo.prs)
                target = f"refs/pr/{pr}"
                repo.branches[target] = dict(repo.branches[rev])
            else:
                target = rev
            tree = repo.branches[target]
            for d in deleted:
                for p in [p for p in tree if p == d or p.startswith(d.rstrip("/") + "/")]:
                    del tree[p]
            tree.update(files)
            hub.commits.append(Commit(repo.repo_id, target, header["summary"], files, lfs_paths, deleted, pr))
            oid = hashlib.sha1(f"{len(hub.commits)}".encode()).hexdigest()
            prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
            self._send(200, {
                "commitUrl": f"{hub.url}/{prefix}{repo.repo_id}/commit/{oid}",
                "commitOid": oid,
                "pullRequestUrl": f"{hub.url}/{prefix}{repo.repo_id}/discussions/{pr}" if pr else None,
            })

    ROUTES = [
        ("GET", r"/api/whoami-v2", Handler.whoami),
        ("POST", r"/api/repos/create", Handler.create_repo),
        ("POST", r"/api/validate-yaml", Handler.validate_yaml),
        ("GET", rf"/api/{REPO_RE}(?:/revision/[^/]+)?", Handler.repo_info),
        ("POST", rf"/api/{REPO_RE}/preupload/(?P<rev>[^/]+)", Handler.preupload),
        ("POST", rf"/api/{REPO_RE}/commit/(?P<rev>[^/]+)", Handler.commit),
        ("POST", rf"/api/{REPO_RE}/branch/(?P<branch>[^/]+)", Handler.create_branch),
        ("GET", rf"/api/{REPO_RE}/tree/(?P<rev>[^/]+)(?:/.*)?", Handler.tree),
        ("POST", r"/(?:(?P<type>dataset|space)s/)?(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch", Handler.lfs_batch),
        ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", Handler.lfs_put),
        ("POST", r"/lfs-verify", Handler.lfs_verify),
    ]
    return Handler
