"""A local stand-in for the Hugging Face Hub's read endpoints, on 127.0.0.1 only.

It answers the requests `huggingface_hub` makes to download a model repo (HF_ENDPOINT points the
library at it), the way the Hub answers them for a public repo whose files are regular git
blobs (no LFS, no Xet storage):

- `GET /api/models/{repo}/revision/{revision}`: the repo info JSON (`id`, `sha` = the commit the
  branch, tag or commit resolves to, `siblings` with `rfilename`); 404 with the Hub's
  `X-Error-Code: RepoNotFound` or `RevisionNotFound` header when unknown.
- `GET /api/models/{repo}/tree/{revision}[/{path}]?recursive=...`: the tree listing, one
  `{"type": "file", "oid": <git blob sha1>, "size": <bytes>, "path": ...}` per file and a
  `{"type": "directory", ...}` per folder, as the Hub lists them.
- `HEAD`/`GET /{repo}/resolve/{revision}/{path}`: the file, with `X-Repo-Commit`, the quoted
  git blob sha1 as `ETag` and `Content-Length`, as the Hub serves a non-LFS file.

Every request is recorded (`requests`), so a test can show that nothing was fetched. What it
leaves out (auth, gated repos, LFS/Xet redirects, pagination) no test here relies on.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class StandinRepo:
    """One model repo: commits (sha -> {path: bytes}) and refs (branch or tag -> sha)."""

    commits: dict[str, dict[str, bytes]]
    refs: dict[str, str]

    def resolve(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


def git_blob_sha1(content: bytes) -> str:
    """The id git (and the Hub's `oid`/`ETag` for a regular file) gives a blob."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


@dataclass
class HubStandin:
    repos: dict[str, StandinRepo]
    requests: list[tuple[str, str]] = field(default_factory=list)
    endpoint: str = ""

    def fetched_files(self) -> list[str]:
        """Paths whose content was served (GET on /resolve/)."""
        return [path for method, path in self.requests if method == "GET" and "/resolve/" in path]


def _handler(hub: HubStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

        def _send(
            self, status: int, body: bytes, headers: dict[str, str], *, with_body: bool
        ) -> None:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def _json(self, payload: object, *, with_body: bool = True) -> None:
            body = json.dumps(payload).encode()
            self._send(200, body, {"Content-Type": "application/json"}, with_body=with_body)

        def _not_found(self, code: str, *, with_body: bool = True) -> None:
            body = json.dumps({"error": code}).encode()
            headers = {"Content-Type": "application/json", "X-Error-Code": code}
            self._send(404, body, headers, with_body=with_body)

        def _repo_and_rest(self, path: str, marker: str) -> tuple[StandinRepo, str, str] | None:
            for repo_id, repo in hub.repos.items():
                prefix = f"{repo_id}/{marker}/"
                if path.startswith(prefix):
                    revision, _, rest = path[len(prefix) :].partition("/")
                    return repo, unquote(revision), rest
            return None

        def _serve(self, *, with_body: bool) -> None:
            hub.requests.append((self.command, self.path))
            url = urlsplit(self.path)
            path = url.path.lstrip("/")
            if path.startswith("api/models/"):
                self._api(path.removeprefix("api/models/"), with_body=with_body)
                return
            found = self._repo_and_rest(path, "resolve")
            if found is None:
                self._not_found("RepoNotFound", with_body=with_body)
                return
            repo, revision, filename = found
            commit = repo.resolve(revision)
            if commit is None:
                self._not_found("RevisionNotFound", with_body=with_body)
                return
            files = repo.commits[commit]
            if unquote(filename) not in files:
                self._not_found("EntryNotFound", with_body=with_body)
                return
            content = files[unquote(filename)]
            headers = {
                "X-Repo-Commit": commit,
                "ETag": f'"{git_blob_sha1(content)}"',
                "Content-Type": "application/octet-stream",
            }
            self._send(200, content, headers, with_body=with_body)

        def _api(self, path: str, *, with_body: bool) -> None:
            for marker in ("revision", "tree"):
                found = self._repo_and_rest(path, marker)
                if found is None:
                    continue
                repo, revision, rest = found
                commit = repo.resolve(revision)
                if commit is None:
                    self._not_found("RevisionNotFound", with_body=with_body)
                    return
                files = repo.commits[commit]
                if marker == "revision":
                    repo_id = path.split("/revision/")[0]
                    siblings = [{"rfilename": name} for name in sorted(files)]
                    self._json({"id": repo_id, "sha": commit, "siblings": siblings})
                    return
                self._json(_tree(files, rest.strip("/")), with_body=with_body)
                return
            self._not_found("RepoNotFound", with_body=with_body)

        def do_GET(self) -> None:
            self._serve(with_body=True)

        def do_HEAD(self) -> None:
            self._serve(with_body=False)

    return Handler


def _tree(files: dict[str, bytes], under: str) -> list[dict[str, object]]:
    """The recursive tree listing of the files under `under` ('' for the whole repo)."""
    entries: dict[str, dict[str, object]] = {}
    prefix = f"{under}/" if under else ""
    for name, content in sorted(files.items()):
        if not name.startswith(prefix):
            continue
        parts = name.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder.startswith(prefix):
                entries.setdefault(
                    folder, {"type": "directory", "oid": git_blob_sha1(folder.encode()), "size": 0}
                )
        oid = git_blob_sha1(content)
        entries[name] = {"type": "file", "oid": oid, "size": len(content)}
    return [{**entry, "path": path} for path, entry in sorted(entries.items())]


@contextmanager
def hub_standin(repos: dict[str, StandinRepo]) -> Iterator[HubStandin]:
    """The stand-in listening on 127.0.0.1 (an ephemeral port) while the block runs."""
    hub = HubStandin(repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
