"""A build's context from git: its key (what the image tag is made of) and its tar stream.

A session works on the repository's HEAD commit, and so does its build: the context is the committed
tree at that commit (``git archive``), never untracked or uncommitted files. The tag is a hash of the
context's tree id, the Dockerfile's blob id, the build args and the target, so an unchanged repository
maps to the same tag and is never built twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import IO

from ..errors import ConfigError
from ..model.build import LOCAL_BUILD_PREFIX, BuildConfig
from ..model.image import BUILD_REPOSITORY
from ..model.naming import slugify
from ..repos.git import git_argv, git_env, run_git

OUTSIDE_DOCKERFILE = ".clauderon.Dockerfile"  # where a Dockerfile from outside the context goes in the tar


def _object(repo: Path, commit: str, path: str) -> tuple[str, str]:
    """(type, id) of ``path`` at ``commit``; ("", "") when it is not there."""
    spec = f"{commit}^{{tree}}" if path == "." else f"{commit}:{path}"
    result = run_git(["cat-file", "--batch-check=%(objecttype) %(objectname)"], repo, stdin=spec + "\n")
    parts = result.stdout.split()
    return (parts[0], parts[1]) if result.returncode == 0 and len(parts) == 2 else ("", "")


_KEYS: dict[tuple[str, str, str], str] = {}


def build_key(repo: Path, commit: str, build: BuildConfig) -> str:
    """16 hex digits naming what ``build`` builds at ``commit``; ``ConfigError`` when the context or the
    Dockerfile is not in the commit. Remembered per commit (a form plans on every keystroke)."""
    memo = (str(repo), commit, json.dumps(build.to_json(), sort_keys=True))
    if memo not in _KEYS:
        if len(_KEYS) > 256:
            _KEYS.clear()
        _KEYS[memo] = _build_key(repo, commit, build)
    return _KEYS[memo]


def _committed(repo: Path, commit: str, path: str, kind: str, key: str) -> str:
    """The id of ``path`` at ``commit``, which must be a ``kind`` (tree or blob); else a ``ConfigError``."""
    found, object_id = _object(repo, commit, path)
    if found != kind:
        what = "folder" if kind == "tree" else "file"
        raise ConfigError(
            f"build.{key} {path!r}: no such {what} in the repository at commit {commit[:12]} "
            "(builds use committed files; commit it first)",
            field="build",
        )
    return object_id


def _build_key(repo: Path, commit: str, build: BuildConfig) -> str:
    tree = _committed(repo, commit, build.context, "tree", "context")
    blob = _committed(repo, commit, build.dockerfile_path, "blob", "dockerfile")
    what = [tree, blob, dockerfile_in_context(build), sorted(build.args.items()), build.target]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]


def dockerfile_in_context(build: BuildConfig) -> str:
    """The Dockerfile's path inside the context tar."""
    rel = posixpath.relpath(build.dockerfile_path, build.context)
    return OUTSIDE_DOCKERFILE if rel.startswith("../") or rel == ".." else rel


def repo_slug(repo: Path, remote_name: str | None = None) -> str:
    """The repository's name as an image path component."""
    name = remote_name or repo.name
    name = re.sub(r"\.git$", "", name)
    return slugify(name, limit=40) or "repo"


PENDING = "pending"  # the tag of a build whose commit has not arrived yet (the service, before the upload)


def build_tag(
    repo: Path,
    commit: str,
    build: BuildConfig,
    push_registry: str | None,
    name: str | None = None,
    pending_ok: bool = False,
    owner_part: str | None = None,
) -> str:
    """``localhost/clauderon-build/<repo>:<key>`` on an engine; ``<push_registry>/clauderon-build/<repo>:<key>``
    for a cluster. ``pending_ok``: a commit not in ``repo`` yet gives the tag ``pending``. ``owner_part``: on the
    shared service, a path component of the owner's (``…/clauderon-build/<owner>/<repo>:<key>``)."""
    prefix = f"{push_registry.rstrip('/')}/{BUILD_REPOSITORY}" if push_registry else LOCAL_BUILD_PREFIX
    if owner_part:
        prefix = f"{prefix}/{owner_part}"
    if pending_ok and _object(repo, commit, ".")[0] != "tree":
        return f"{prefix}/{repo_slug(repo, name)}:{PENDING}"
    return f"{prefix}/{repo_slug(repo, name)}:{build_key(repo, commit, build)}"


def context_tar(repo: Path, commit: str, build: BuildConfig) -> IO[bytes]:
    """The build context as a tar file (spooled to disk when large), Dockerfile included."""
    spec = f"{commit}^{{tree}}" if build.context == "." else f"{commit}:{build.context}"
    out = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    result = subprocess.run(
        git_argv(["archive", "--format=tar", spec]), cwd=repo, stdout=out, stderr=subprocess.PIPE, env=git_env()
    )
    if result.returncode != 0:
        out.close()
        raise ConfigError(
            f"build.context {build.context!r}: git could not archive it at commit {commit[:12]}", field="build"
        )
    if dockerfile_in_context(build) == OUTSIDE_DOCKERFILE:
        data = subprocess.run(
            git_argv(["show", f"{commit}:{build.dockerfile_path}"]), cwd=repo, capture_output=True, env=git_env()
        ).stdout
        out.seek(0)
        merged = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller
        with tarfile.open(fileobj=out, mode="r:") as src, tarfile.open(fileobj=merged, mode="w:") as dst:
            for member in src.getmembers():
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
            info = tarfile.TarInfo(OUTSIDE_DOCKERFILE)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
        out.close()
        out = merged
    out.seek(0)
    return out
