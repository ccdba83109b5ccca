"""Git bundles: how a repository travels to the service and a session branch travels back.

The client sends the commits of its current HEAD the service does not have yet; the
service keeps one bare repository per user and repository, makes session worktrees
from it, and sends a session branch back as a bundle of the commits beyond its base.
Every git command runs with ``SAFE_GIT`` (no hooks, no fsmonitor): bundles are untrusted.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ..errors import ClauderonError, ConfigError
from .gitrepo import RepoInfo, run_git

_HASH = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
TIP_PREFIX = "refs/clauderon/tips/"
_REF = re.compile(r"^(?:HEAD|refs/[A-Za-z0-9._/-]{1,200})$")  # no refspec syntax (":", "+", "^") gets through
MAX_HAVES = 64


class BundleError(ClauderonError):
    """A bundle is not valid or does not hold what it claims."""


def is_commit_hash(value: object) -> bool:
    return isinstance(value, str) and bool(_HASH.match(value))


def repo_key(root: Path) -> str:
    """A stable key for a client's repository (its path), used to find the service's copy of it."""
    return hashlib.sha256(str(root).encode(errors="surrogatepass")).hexdigest()[:24]


# --- client side ---------------------------------------------------------------------------


def make_bundle(repo: RepoInfo, haves: list[str], dest: Path) -> bool:
    """Write a bundle of HEAD (``repo.commit``) without the commits the service already has (``haves``).

    Returns False when there is nothing to send (the service has every commit).
    """
    known = [h for h in haves[:MAX_HAVES] if is_commit_hash(h)]
    if repo.commit in known:
        return False
    if known:  # only what this repository has can be left out
        check = run_git(["cat-file", "--batch-check"], repo.root, stdin="".join(f"{h}^{{commit}}\n" for h in known))
        present = {p[0] for p in (line.split() for line in check.stdout.splitlines()) if p[1:2] == ["commit"]}
        known = [h for h in known if h in present]
    out = run_git(["bundle", "create", "-q", str(dest), "HEAD", *(f"^{h}" for h in known)], repo.root)
    if out.returncode != 0:
        if "empty bundle" in out.stderr:
            return False
        raise ConfigError(f"repo '{repo.root}': git bundle failed ({_last_line(out.stderr)})", field="repo")
    return True


def fetch_branch(repo_root: Path, bundle: Path, branch: str) -> str:
    """Fetch ``branch`` from a bundle into the user's repository; returns the commit it now points at."""
    ref = f"refs/heads/{branch}"
    out = run_git(["fetch", "--no-tags", "--no-write-fetch-head", str(bundle), f"{ref}:{ref}"], repo_root)
    if out.returncode != 0:
        raise ConfigError(f"repo '{repo_root}': could not fetch {branch} ({_last_line(out.stderr)})", field="repo")
    head = run_git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], repo_root)
    return head.stdout.strip()


def set_branch(repo_root: Path, branch: str, commit: str) -> None:
    """Point ``branch`` at a commit the repository already has (a session with no commits of its own)."""
    if not is_commit_hash(commit) or not _has(repo_root, commit):
        raise ConfigError(f"repo '{repo_root}': does not have commit {commit[:12]!r} the session started from")
    out = run_git(["branch", "-f", branch, commit], repo_root)
    if out.returncode != 0:
        raise ConfigError(f"repo '{repo_root}': could not set {branch} ({_last_line(out.stderr)})", field="repo")


# --- service side --------------------------------------------------------------------------


def ensure_bare(path: Path) -> Path:
    """The bare repository at ``path``, made on first use."""
    if not (path / "HEAD").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        out = run_git(["init", "--bare", "-q", str(path)], path.parent)
        if out.returncode != 0:
            raise ClauderonError(f"cannot make the workspace repository ({_last_line(out.stderr)})")
    return path


def tips(bare: Path) -> list[str]:
    """Commits the service has for this repository (the tips it was sent and the session branches)."""
    if not (bare / "HEAD").is_file():
        return []
    out = run_git(
        [
            "for-each-ref",
            "--sort=-creatordate",
            f"--count={MAX_HAVES}",
            "--format=%(objectname)",
            TIP_PREFIX,
            "refs/heads/clauderon/",
        ],
        bare,
    )
    return list(dict.fromkeys(line for line in out.stdout.split() if is_commit_hash(line)))


def has_commit(bare: Path, commit: str) -> bool:
    return is_commit_hash(commit) and (bare / "HEAD").is_file() and _has(bare, commit)


def bundle_heads(bundle: Path) -> tuple[dict[str, str], list[str]]:
    """The refs (name -> commit) and prerequisite commits a bundle declares, read from its header."""
    refs: dict[str, str] = {}
    needs: list[str] = []
    with open(bundle, "rb") as fh:
        first = fh.readline()
        if first not in (b"# v2 git bundle\n", b"# v3 git bundle\n"):
            raise BundleError("the workspace bundle is not a valid git bundle (no bundle header)")
        for _ in range(10_000):
            line = fh.readline(4096)
            if line in (b"\n", b""):
                break
            text = line.decode("utf-8", errors="replace").rstrip("\n")
            if text.startswith("@"):
                continue  # v3 capabilities
            if text.startswith("-"):
                needs.append(text[1:].split(" ", 1)[0])
                continue
            commit, _, ref = text.partition(" ")
            if not is_commit_hash(commit) or not _REF.match(ref):
                raise BundleError("the workspace bundle is not a valid git bundle (bad ref line)")
            refs[ref] = commit
    return refs, needs


def import_bundle(bare: Path, bundle: Path, commit: str) -> None:
    """Fetch ``commit`` from an uploaded bundle into ``bare`` as a tip; ``BundleError`` if it is not there."""
    refs, needs = bundle_heads(bundle)
    source = next((r for r, c in refs.items() if c == commit), None)
    if source is None:
        raise BundleError(f"the workspace bundle does not contain commit {commit[:12]}")
    missing = [n for n in needs if not is_commit_hash(n) or not _has(bare, n)]
    if missing:
        raise BundleError(
            f"the workspace bundle needs commit {missing[0][:12]}, which the service does not have; send it again"
        )
    out = run_git(
        [
            "-c",
            "fetch.fsckObjects=true",
            "fetch",
            "--no-tags",
            "--no-write-fetch-head",
            "-q",
            str(bundle),
            f"{source}:{TIP_PREFIX}{commit}",
        ],
        bare,
    )
    if out.returncode != 0 or not _has(bare, commit):
        raise BundleError(f"the workspace bundle could not be read ({_last_line(out.stderr)})")


def keep_tip(bare: Path, commit: str) -> None:
    """Remember ``commit`` as a tip (so a later upload from the same repository can leave it out)."""
    run_git(["update-ref", f"{TIP_PREFIX}{commit}", commit], bare)


def export_branch(bare: Path, branch: str, base: str | None, dest: Path) -> str | None:
    """Write a bundle of ``branch`` beyond ``base`` to ``dest``; returns the branch's commit.

    Returns None (and writes nothing) when the branch has no commits beyond its base.
    """
    head = run_git(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}"], bare)
    commit = head.stdout.strip()
    if head.returncode != 0 or not is_commit_hash(commit):
        raise ClauderonError(f"the session's branch {branch} no longer exists")
    if base and commit == base:
        return None
    excluded = [f"^{base}"] if base and is_commit_hash(base) else []
    out = run_git(["bundle", "create", "-q", str(dest), f"refs/heads/{branch}", *excluded], bare)
    if out.returncode != 0:
        raise ClauderonError(f"could not bundle {branch} ({_last_line(out.stderr)})")
    return commit


def _has(root: Path, commit: str) -> bool:
    return run_git(["cat-file", "-e", f"{commit}^{{commit}}"], root).returncode == 0


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"
