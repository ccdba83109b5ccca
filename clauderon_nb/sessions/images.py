"""The image browser: a registry's repositories and tags, the engine's images and the policy's allowed
images, each marked allowed or not by the admin policy; and the image field's suggestions."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from ..config.cache import Memo
from ..errors import ClauderonError, ConfigError
from ..model.answers import ImageListing, ImageRow
from ..model.image import DEFAULT_REGISTRY, is_built_image, is_registry_host, parse_image

if TYPE_CHECKING:
    from .manager import SessionManager

CACHE_SECONDS = 60.0
DETAILED_TAGS = 30  # tags described with digest, size and created (newest names first); the rest by name
_T = TypeVar("_T")
#: Registry answers (catalogs, tag lists, tag details) and the engine's images, for a minute.
REGISTRY_ANSWERS = Memo(512, CACHE_SECONDS)


def cached(key: tuple[Any, ...], compute: Callable[[], _T], seconds: float = CACHE_SECONDS) -> _T:
    """``compute()``, remembered for ``seconds`` (suggestions are asked for on every keystroke)."""
    return REGISTRY_ANSWERS.get(key, compute, seconds)


def split_target(target: str) -> tuple[str, str | None]:
    """``REGISTRY`` -> (registry, None); ``[REGISTRY/]REPOSITORY[:tag]`` -> (registry, repository)."""
    text = target.strip().rstrip("/")
    if not text or any(c.isspace() for c in text):
        raise ConfigError(f"images {target!r}: expected REGISTRY or [REGISTRY/]REPOSITORY, e.g. ghcr.io/org/app")
    if "/" not in text and is_registry_host(text) and not re.search(r":[^0-9]", text):
        return text, None
    try:
        ref = parse_image(text, "images")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ref.registry, ref.repository


class ImageBrowser:
    """Lists images for one user: ``policy`` marks them, ``registry_auth`` and ``docker login`` authenticate."""

    def __init__(
        self,
        policy: Any,
        registry_auth: Any = None,
        local: Callable[[], list[str]] | None = None,
        only_allowed_registries: bool = False,
    ) -> None:
        self.policy = policy
        self.registry_auth = registry_auth
        self.local = local
        #: On the service: browse only registries the policy allows images from (the service's own
        #: requests and credentials are not for any host a user names).
        self.only_allowed_registries = only_allowed_registries

    def _check_registry(self, registry: str, repository: str | None = None) -> None:
        """On the service: refuse, without contacting it, a registry (or repository) the caller's
        ``allowed_images`` does not name."""
        if not self.only_allowed_registries or self.policy.names_registry(registry, repository):
            return
        from ..errors import PolicyError

        found = self.policy.first("allowed_images")
        what = f"{registry}/{repository}" if repository else registry
        rule = (
            f"allowed_images: {', '.join(found[0]) or 'none'}; {found[1].where_for('allowed_images')}"
            if found
            else "its allowed_images names no registry"
        )
        raise PolicyError(
            f"images {what}: not allowed: the clauderon service contacts only registries and repositories the "
            f"admin policy allows images from ({rule})",
            field="image",
        )

    def _allowed(self, image: str) -> bool | None:
        if self.policy.first("allowed_images") is None:
            return None
        return bool(self.policy.image_allowed(image))

    def _rule(self) -> str | None:
        found = self.policy.first("allowed_images")
        if found is None:
            return None
        return f"allowed_images: {', '.join(found[0]) or 'none'}  ({found[1].where_for('allowed_images')})"

    def _client(self, registry: str) -> Any:
        from ..backends.registry import client_for

        auth = self.registry_auth
        return client_for(registry, auth.config_file if auth else None, auth.registry if auth else None)

    def listing(self, target: str | None) -> ImageListing:
        if not target:
            return self.overview()
        registry, repository = split_target(target)
        self._check_registry(registry, repository)
        if repository is None:
            return self.catalog(registry)
        return self.tags(registry, repository)

    def overview(self) -> ImageListing:
        """The policy's allowed images and the engine's images."""
        rows: list[ImageRow] = []
        found = self.policy.first("allowed_images")
        for pattern in found[0] if found else []:
            rows.append(ImageRow(pattern, "policy", allowed=True))
        notes = []
        if self.local is not None:
            try:
                for tag in map(canonical_image, self.local()):
                    rows.append(ImageRow(tag, "local", allowed=self._allowed(tag)))
            except ClauderonError as exc:
                notes.append(f"local images: {exc}")
        notes.append("browse a registry with: images REGISTRY (its repositories) or images REGISTRY/REPOSITORY (tags)")
        return ImageListing("Images: the admin policy's and this engine's", rows, self._rule(), notes)

    def catalog(self, registry: str) -> ImageListing:
        from ..backends.registry import RegistryError

        try:
            repositories = cached(("catalog", registry), lambda: self._client(registry).catalog())
        except RegistryError as exc:
            raise RegistryError(exc.kind, f"images {registry}: {exc.detail}") from None
        rows = [ImageRow(f"{registry}/{r}", "repository") for r in repositories]
        return ImageListing(f"Repositories in {registry}", rows, self._rule(), [])

    def tags(self, registry: str, repository: str) -> ImageListing:
        from ..backends.registry import RegistryError

        name = f"{registry}/{repository}"
        try:
            client = self._client(registry)
            tags = cached(("tags", registry, repository), lambda: client.tags(repository))
            ordered = sorted(tags, key=_tag_order, reverse=True)
            detailed = ordered[:DETAILED_TAGS]

            def describe(tag: str) -> Any:
                return cached(("tag", registry, repository, tag), lambda: client.tag_info(repository, tag))

            with ThreadPoolExecutor(max_workers=8) as pool:
                infos = list(pool.map(describe, detailed))
        except RegistryError as exc:
            raise RegistryError(exc.kind, f"images {name}: {exc.detail}") from None
        rows = [
            ImageRow(f"{name}:{i.tag}", "tag", i.digest, i.size, i.created, self._allowed(f"{name}:{i.tag}"))
            for i in infos
        ]
        rows += [ImageRow(f"{name}:{t}", "tag", allowed=self._allowed(f"{name}:{t}")) for t in ordered[DETAILED_TAGS:]]
        rows.sort(key=lambda r: r.created or "", reverse=True)
        notes = (
            [] if len(ordered) <= DETAILED_TAGS else [f"{len(ordered) - DETAILED_TAGS} more tags listed by name only"]
        )
        shown = name.removeprefix(f"{DEFAULT_REGISTRY}/library/") if registry == DEFAULT_REGISTRY else name
        return ImageListing(f"Tags of {shown}", rows, self._rule(), notes)

    def suggestions(self, typed: str = "") -> list[str]:
        """Tags of the repository being typed (``registry/repo:``), for an image field."""
        text = typed.strip()
        if "/" not in text or not is_registry_host(text.split("/", 1)[0]):
            return []
        base = text.split("@", 1)[0]
        repo_part = base.rsplit(":", 1)[0] if ":" in base.split("/")[-1] else base
        try:
            registry, repository = split_target(repo_part)
            self._check_registry(registry, repository)
        except ClauderonError:
            return []
        if repository is None:
            return []
        from ..backends.registry import RegistryError

        try:
            tags = cached(("tags", registry, repository), lambda: self._client(registry).tags(repository))
        except RegistryError:
            return []
        return [f"{registry}/{repository}:{t}" for t in sorted(tags, key=_tag_order, reverse=True)]


def canonical_image(tag: str) -> str:
    """An engine's tag in canonical form (what the policy matches), or as it is when it does not parse."""
    try:
        return str(parse_image(tag))
    except ValueError:
        return tag


def _tag_order(tag: str) -> tuple[Any, ...]:
    """Version-like tags by their numbers (1.10 after 1.9), others by name."""
    parts = re.split(r"(\d+)", tag)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def browser_for(m: SessionManager) -> ImageBrowser:
    """The image browser as the manager's owner may use it: their policy, the configured registry auth, and
    the engine's images that policy allows (on the service: only if the policy names images, never builds)."""
    from ..config.environment import docker_engine_present
    from ..config.files import load_system_config, load_user_config

    policy = m.policy()
    auth = (
        load_user_config(m.home).docker.data.image.registry_auth or load_system_config().docker.data.image.registry_auth
    )
    local = None
    if docker_engine_present():

        def local() -> list[str]:
            tags = list(m.backend("docker").local_images())  # type: ignore[attr-defined]
            if m.shared and policy.first("allowed_images") is None:
                return []
            return [
                t
                for t in tags
                if policy.image_allowed(canonical_image(t)) and not (m.shared and is_built_image(canonical_image(t)))
            ]

    return ImageBrowser(policy, auth, local, only_allowed_registries=m.shared)


def suggestions_for(m: SessionManager, typed: str = "") -> list[str]:
    """Suggestions for an image field: the policy's literal images, recent ones, the engine's, and the tags
    of a registry repository being typed (cached for a minute)."""
    browser = browser_for(m)
    out = list(m.options().images)
    if browser.local is not None:
        with contextlib.suppress(ClauderonError):
            out += cached(("local", m.owner), browser.local, 10.0)
    out += browser.suggestions(typed)
    return list(dict.fromkeys(out))
