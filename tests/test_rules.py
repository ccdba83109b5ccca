"""Rules that live in one place each: names from input, the cache, git ids, secret-looking names,
registry hosts. Each is checked here once, through its one home, and its users are checked to use it."""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from clauderon_nb.config.cache import Memo
from clauderon_nb.config.files import RegistryAuth
from clauderon_nb.config.resolve import ResolvedSettings
from clauderon_nb.model.build import BuildConfig
from clauderon_nb.model.choices import Backend
from clauderon_nb.model.git_ids import is_commit_hash
from clauderon_nb.model.hints import DEFAULTABLE_FIELDS
from clauderon_nb.model.image import is_registry_host
from clauderon_nb.model.naming import label_safe, owner_label_matches, safe_slug
from clauderon_nb.model.pull_policy import PullPolicy
from clauderon_nb.model.redact import looks_secret
from clauderon_nb.model.request import CreateSessionRequest
from clauderon_nb.model.settings_json import request_json

PKG = Path(__file__).resolve().parent.parent / "clauderon_nb"
LABEL = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
DNS = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Jane.Doe", "jane-doe--" + hashlib.sha256(b"Jane.Doe").hexdigest()[:8]),
        ("Jane Doe", "Jane-Doe-" + hashlib.sha256(b"Jane Doe").hexdigest()[:8]),  # the old escaping's shape
        ("jane@x.org", "jane-x-org"),
        ("Bob", "bob"),
        ("a" * 70, "a" * 71),
        ("", "x"),
        ("x--y", "x-y"),
    ],
)
def test_two_values_never_share_a_slug_or_a_label(a: str, b: str) -> None:
    for make, pattern, limit in ((label_safe, LABEL, 63), (lambda v: safe_slug(v, 22), DNS, 22)):
        first, second = make(a), make(b)
        assert first != second, (a, b)
        for out in (first, second):
            assert pattern.fullmatch(out) and len(out) <= limit, out
        assert make(first) == first or "--" in make(first)  # a slug is stable, or marked as made


def test_a_valid_value_is_used_as_it_is_and_labels_of_earlier_versions_still_match() -> None:
    assert label_safe("alice") == "alice" and label_safe("Jane.Doe") == "Jane.Doe" and safe_slug("alice") == "alice"
    owner = "Jane.Doe@example.org"
    legacy = "Jane.Doe-example.org-" + hashlib.sha256(owner.encode()).hexdigest()[:8]
    assert owner_label_matches(label_safe(owner), owner) and owner_label_matches(legacy, owner)
    # a user whose name is shaped like another's old label never matches that other's objects' new label
    assert not owner_label_matches(label_safe(owner), legacy) and not owner_label_matches("alice", "Alice")


def test_the_cache_is_bounded_least_recently_used_first_and_forgets_after_its_time() -> None:
    now = [0.0]
    memo = Memo(3, seconds=10, clock=lambda: now[0])
    calls: list[str] = []

    def compute(key: str) -> str:
        calls.append(key)
        return key.upper()

    for key in ("a", "b", "c"):
        assert memo.get(key, lambda k=key: compute(k)) == key.upper()
    memo.get("a", lambda: compute("a"))  # a hit: "a" is now the most recently used
    memo.get("d", lambda: compute("d"))  # "b" goes
    assert len(memo) == 3 and memo.peek("b") is None and memo.peek("a") == "A"
    assert calls == ["a", "b", "c", "d"]
    now[0] = 11.0
    memo.get("a", lambda: compute("a"))
    assert calls[-1] == "a"  # too old: computed again
    with pytest.raises(RuntimeError):
        memo.get("e", lambda: (_ for _ in ()).throw(RuntimeError("no")))
    assert memo.peek("e") is None  # a failure is not kept


def test_typed_input_cannot_grow_a_cache_without_end() -> None:
    from clauderon_nb.sessions.images import REGISTRY_ANSWERS, cached

    for i in range(REGISTRY_ANSWERS.size + 50):
        cached(("tags", "registry.test", f"typed-{i}"), lambda: [])
    assert len(REGISTRY_ANSWERS) <= REGISTRY_ANSWERS.size
    REGISTRY_ANSWERS.clear()


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a" * 40, True),
        ("0123456789abcdef" * 4, True),
        ("a" * 39, False),
        ("A" * 40, False),
        ("a" * 40 + "\n", False),
        ("a" * 41, False),
        (None, False),
        (b"a" * 40, False),
    ],
)
def test_a_commit_hash_is_a_full_lowercase_object_id(value: object, ok: bool) -> None:
    assert is_commit_hash(value) is ok


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("GITHUB_TOKEN", True),
        ("password", True),
        ("SMTP_PASS", True),
        ("api_key", True),
        ("apikey", True),
        ("identitytoken", True),
        ("client_secret", True),
        ("GIT_PAT", True),
        ("SSH_PRIVATE_KEY_FILE", True),
        ("registry_url", False),
        ("NODE_VERSION", False),
        ("image", False),
    ],
)
def test_one_rule_says_which_names_hold_secrets_in_config_files_and_environments(name: str, secret: bool) -> None:
    from clauderon_nb.config.tomlfile import looks_secret as config_rule

    assert looks_secret(name) is secret
    assert config_rule is looks_secret  # the config files use the same rule, not a copy


@pytest.mark.parametrize(
    ("first", "registry"),
    [("ghcr.io", True), ("127.0.0.1:5000", True), ("localhost", True), ("library", False), ("team", False)],
)
def test_one_rule_says_whether_a_reference_starts_with_a_registry(first: str, registry: bool) -> None:
    assert is_registry_host(first) is registry


def _literals(pattern: str) -> list[str]:
    """Modules holding ``pattern`` as a string literal (a rule written again instead of imported)."""
    found = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and pattern in node.value:
                found.append(str(path.relative_to(PKG)))
    return sorted(set(found))


def test_each_rule_is_written_once() -> None:
    assert _literals("[0-9a-f]{40}") == ["model/git_ids.py"]
    assert _literals("[0-9a-f]{8,64}") == ["repos/bundles.py"]
    assert _literals("0123456789abcdef") == []  # hex checks by hand
    files = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if '"." in first or ":" in first' in p.read_text()]
    assert files == ["model/image.py"], files
    slugs = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if re.search(r"hexdigest\(\)\[:[0-9]", p.read_text())]
    assert sorted(slugs) == ["backends/buildctx.py", "repos/bundles.py"], slugs  # content keys, not names


def test_the_widget_and_the_terminal_ui_share_one_form_state(home: Path, repo: Path) -> None:
    """One ``form_state`` decides what a create form says; both forms only render it."""
    from clauderon_nb.frontends.form_state import form_state
    from clauderon_nb.frontends.widgets import CreateSessionForm
    from clauderon_nb.sessions.manager import SessionManager

    for module in ("widgets.py", "tui.py"):
        text = (PKG / "frontends" / module).read_text()
        assert "form_state(" in text and ".errors(include_url" not in text  # no copy of the per-field walk
    mgr = SessionManager()
    values = {"repo": str(repo), "prompt": "x", "backend": "docker", "memory_limit": "2x"}
    state = form_state(mgr, values, prompt_touched=True)
    assert list(state.errors) == ["memory_limit"] and not state.ok
    assert state.errors["memory_limit"].startswith("memory_limit '2x': unknown unit 'x'; expected bytes")
    form = CreateSessionForm(mgr)
    for key, value in values.items():
        form.fields[key].value = value
    assert "memory_limit &#x27;2x&#x27;: unknown unit &#x27;x&#x27;" in form.errors["memory_limit"].value
    assert form.create_button.disabled


def _every_setting(tmp_path: Path) -> ResolvedSettings:
    """Resolved settings with every field set to a value other than its default."""
    auth = tmp_path / "config.json"
    auth.write_text("{}")
    return ResolvedSettings(
        backend=Backend.KUBERNETES,
        agent="claude",
        preset="small",
        preset_options={"image": "r"},
        image="ghcr.io/org/app:1.2@sha256:" + "a" * 64,
        build=BuildConfig(context="sub", dockerfile="sub/Dockerfile.dev", args={"A": "1"}, target="dev"),
        pull_policy=PullPolicy.ALWAYS,
        cpu_limit=1500,
        memory_limit=3 * 1024**3,
        cpu_request=250,
        memory_request=512 * 1024**2,
        gpus=2,
        container_env={"MODE": "dev"},
        container_user="agent",
        post_create_command=["make", "setup"],
        registry_check=False,
        build_push_registry="registry.example:5000",
        network="none",
        extra_env={"TOKEN": "s3cret"},
        registry_auth=RegistryAuth(registry="ghcr.io", config_file=auth),
        namespace="team-a",
        service_account="agents",
        storage_class="fast",
        workspace_size=10 * 1024**3,
        image_pull_secrets=("pull-a", "pull-b"),
        git_remote_url="https://example.org/org/app.git",
        workspace="ephemeral",
        run_as_user=1234,
        pod_start_timeout=90.0,
        kubeconfig=tmp_path / "kubeconfig",
        context="kind",
        gpu_resource="nvidia.com/gpu",
        node_selector={"pool": "gpu"},
        tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        priority_class_name="low",
        pids_limit=256,
        extra_container_config={"lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}}},
        extra_pod_config={"runtimeClassName": "gvisor"},
    )


def test_every_setting_round_trips_through_the_store_and_the_service(tmp_path: Path) -> None:
    """One encoder (``model/settings_json.py``): the stored form parses back to the same settings, and a
    create's body parses back, through the request model, to the same values."""
    settings = _every_setting(tmp_path)
    unset = [k for k, f in ResolvedSettings.__dataclass_fields__.items() if getattr(settings, k) == f.default]
    assert unset == [], f"the round trip must cover every field: {unset}"
    stored = json.loads(json.dumps(settings.to_json()))
    assert "s3cret" not in json.dumps(stored)  # possibly secret values never leave as JSON
    back = ResolvedSettings.from_json(stored, secrets={"TOKEN": "s3cret", "MODE": "dev"})
    # Registry auth is a local file for pulls, not part of the session: it is not read back.
    assert replace(back, registry_auth=settings.registry_auth) == settings
    every = {k: getattr(settings, k) for k in DEFAULTABLE_FIELDS if k in ResolvedSettings.__dataclass_fields__}
    for left_out in ("build", "image"):  # a request gives an image or a build, never both
        sent = {k: v for k, v in every.items() if k != left_out}
        request = CreateSessionRequest(prompt="x", **json.loads(json.dumps(request_json(sent))))
        for key, value in sent.items():
            assert getattr(request, key) == value, key


def test_settings_are_encoded_in_one_place() -> None:
    """Nothing but ``model/settings_json.py`` turns settings into JSON by hand (no second ``to_json``)."""
    for path in PKG.rglob("*.py"):
        text = path.read_text()
        if path.name == "settings_json.py":
            continue
        assert "def request_json" not in text and "mask_env(" not in text.replace("def mask_env(", ""), path
