"""Git bundles: how a repository travels to the service and a session branch travels back.

The client sends the commits of its current HEAD the service does not have yet; the
service keeps one bare repository per user and repository, makes session workspaces
from it, and sends a session branch back as a bundle of the commits beyond its base.
Every git command runs with ``SAFE_GIT`` (no hooks, no fsmonitor): bundles are untrusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TypeGuard

from ..errors import ClauderonError, ConfigError
from ..model.git_ids import is_commit_hash
from .gitrepo import RepoInfo, fetch_one_ref, run_git

TIP_PREFIX = "refs/clauderon/tips/"
_REF = re.compile(r"^(?:HEAD|refs/[A-Za-z0-9._/-]{1,200})$")  # no refspec syntax (":", "+", "^") gets through
MAX_HAVES = 64


class BundleError(ClauderonError):
    """A bundle is not valid or does not hold what it claims."""


def service_repo(data_dir: Path, owner: str, key: str) -> Path:
    """The service's copy of one of ``owner``'s repositories (never mounted into a session)."""
    from ..model.naming import owner_folder

    return data_dir / "repos" / owner_folder(owner) / f"{key}.git"


def is_repo_key(value: object) -> TypeGuard[str]:
    """A repository copy's key (``repo_key``; ``workspace.key`` on the wire): 8-64 lowercase hex digits."""
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{8,64}", value) is not None


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
    """Fetch ``branch`` from a bundle into the user's repository (that ref only, checked with fsck);
    returns the commit it now points at. Errors never echo what the bundle holds."""
    ref = f"refs/heads/{branch}"
    refs, _ = bundle_heads(bundle)
    if set(refs) != {ref}:
        raise BundleError(f"the session's bundle holds other refs than {ref}; nothing was fetched")
    problem = fetch_one_ref(repo_root, bundle, ref)
    if problem == "checked out":
        raise ConfigError(
            f"repo '{repo_root}': {branch} is checked out there; switch to another branch, then fetch again",
            field="repo",
        )
    if problem:
        raise ConfigError(
            f"repo '{repo_root}': could not fetch {branch} (its commits failed git's checks, or your repository "
            "lacks the commits it starts from)",
            field="repo",
        )
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


class Incoming:
    """A sent workspace held apart until its create succeeds: a quarantine repository that sees the user's
    copy (``bare``) read-only, as git's receive-pack quarantine does. ``accept`` moves its objects into
    the copy (made now if it is new) and keeps the commit as a tip; ``discard`` leaves nothing behind."""

    def __init__(self, bare: Path, quarantine: Path, commit: str) -> None:
        self.bare, self.root, self.commit = bare, quarantine, commit

    def size(self) -> int:
        """Bytes the quarantine holds on disk."""
        return tree_size(self.root)

    def accept(self) -> None:
        """Move the quarantine's packs into ``bare`` (under the owner's repository lock) and keep the tip."""
        with repo_lock(self.bare.parent):
            if not (self.bare / "HEAD").is_file():
                (self.root / "objects" / "info" / "alternates").unlink(missing_ok=True)
                if self.bare.exists():
                    import shutil

                    shutil.rmtree(self.bare)  # an empty shell left by an earlier version
                os.rename(self.root, self.bare)
                self.discard()
            else:
                source, target = self.root / "objects" / "pack", self.bare / "objects" / "pack"
                target.mkdir(parents=True, exist_ok=True)
                # The .pack before its .idx: a reader never finds an index without its pack.
                for suffix in (".pack", ".rev", ".idx"):
                    for item in sorted(source.glob(f"pack-*{suffix}")):
                        os.replace(item, target / item.name)
                self.discard()
            keep_tip(self.bare, self.commit)
            touch(self.bare)

    def discard(self) -> None:
        """Remove the quarantine (and the folder made for it)."""
        import shutil

        shutil.rmtree(self.root.parent, ignore_errors=True)


def receive_bundle(bare: Path, bundle: Path, commit: str, incoming: Path) -> Incoming:
    """Fetch ``commit`` from an uploaded bundle into a new quarantine under ``incoming`` (checked with fsck);
    ``BundleError`` if the bundle does not hold it. Nothing is written to ``bare``."""
    refs, needs = bundle_heads(bundle)
    source = next((r for r, c in refs.items() if c == commit), None)
    if source is None:
        raise BundleError(f"the workspace bundle does not contain commit {commit[:12]}")
    exists = (bare / "HEAD").is_file()
    missing = [n for n in needs if not is_commit_hash(n) or not exists or not _has(bare, n)]
    if missing:
        raise BundleError(
            f"the workspace bundle needs commit {missing[0][:12]}, which the service does not have; send it again"
        )
    import tempfile

    incoming.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Named like the copy it waits to join: what is planned and built from it (a build's tag) is the same.
    root = Path(tempfile.mkdtemp(prefix="quarantine-", dir=incoming)) / bare.name
    held = Incoming(bare, root, commit)
    try:
        out = run_git(["init", "--bare", "-q", "--template=", str(root)], incoming)
        if out.returncode != 0:
            raise ClauderonError("cannot make the workspace quarantine")
        if exists:
            (root / "objects" / "info").mkdir(parents=True, exist_ok=True)
            (root / "objects" / "info" / "alternates").write_text(f"{(bare / 'objects').resolve()}\n")
        out = run_git(
            [
                "-c",
                "fetch.fsckObjects=true",
                "-c",
                "fetch.unpackLimit=1",
                "fetch",
                "--no-tags",
                "--no-write-fetch-head",
                "-q",
                str(bundle),
                f"{source}:{TIP_PREFIX}{commit}",
            ],
            root,
        )
        if out.returncode != 0 or not _has(root, commit):
            raise BundleError("the workspace bundle could not be read (it failed git's checks)")
    except BaseException:
        held.discard()
        raise
    return held


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links are not followed)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_blocks * 512 if info.st_blocks else info.st_size
    return total


def touch(bare: Path) -> None:
    """Mark the copy as used now (``delete_unused_repos_after`` counts from here)."""
    with contextlib.suppress(OSError):
        os.utime(bare)


@contextlib.contextmanager
def repo_lock(folder: Path) -> Iterator[None]:
    """One writer at a time for an owner's repository copies (an ``flock`` in their folder)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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
