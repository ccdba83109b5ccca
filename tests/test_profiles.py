"""KubeSpawner-style profiles as presets: a real-world ``profile_list`` (as the Zero to JupyterHub docs write
one: images, resources, a GPU profile for one group, and an image choice with an unlisted value) in
config.toml, every preset it makes, the choices a form is offered, and what a create would get."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clauderon_nb import ConfigError, SessionManager
from clauderon_nb.errors import PolicyError
from clauderon_nb.frontends.commands import describe

from .test_plan import validate_manifests

GI = 1024**3

#: In the style of z2jh's "Using multiple profiles to let users select their environment", written as TOML.
PROFILE_LIST = """
[[profile_list]]
display_name = "Minimal environment"
description = "To avoid too much bells and whistles: Python."
default = true
kubespawner_override = { cpu_limit = 1, mem_limit = "2G" }

[[profile_list]]
display_name = "Datascience environment"
description = "If you want the additional bells and whistles: Python, R, and Julia."
[profile_list.kubespawner_override]
image = "quay.io/jupyter/datascience-notebook:2024-05-27"
image_pull_policy = "IfNotPresent"
cpu_limit = 2
cpu_guarantee = 0.5
mem_limit = "4G"
mem_guarantee = "1G"

[[profile_list]]
display_name = "GPU server"
slug = "gpu"
description = "One NVIDIA GPU, on the GPU pool."
allowed_groups = ["gpu-users"]
[profile_list.kubespawner_override]
image = "quay.io/jupyter/pytorch-notebook:cuda12-2024-05-27"
mem_limit = "16G"
extra_resource_limits = { "nvidia.com/gpu" = "1" }
node_selector = { "cloud.google.com/gke-nodepool" = "gpu" }
tolerations = [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule", tolerationSeconds = 60 }]

[[profile_list]]
display_name = "Choose your image"
slug = "custom"
[profile_list.profile_options.image]
display_name = "Image"
[profile_list.profile_options.image.choices.scipy]
display_name = "SciPy"
default = true
kubespawner_override = { image = "quay.io/jupyter/scipy-notebook:2024-05-27" }
[profile_list.profile_options.image.choices.r]
display_name = "R"
kubespawner_override = { image = "quay.io/jupyter/r-notebook:2024-05-27" }
[profile_list.profile_options.image.unlisted_choice]
enabled = true
display_name = "Other image"
validation_regex = "^quay\\\\.io/jupyter/[a-z-]+:[\\\\w.-]+$"
validation_message = "must be an image of quay.io/jupyter with a tag"
kubespawner_override = { image = "{value}" }
"""


@pytest.fixture
def profiles(home: Path) -> Path:
    path = home / "config.toml"
    path.write_text(PROFILE_LIST)
    return path


def test_every_profile_becomes_a_preset_and_the_form_offers_them(profiles: Path, repo: Path) -> None:
    options = SessionManager().options()
    assert {k: v for k, v in options.presets.items() if k not in ("small", "medium", "large")} == {
        "minimal-environment": "Minimal environment — To avoid too much bells and whistles: Python.",
        "datascience-environment": "Datascience environment — If you want the additional bells and whistles: "
        "Python, R, and Julia.",
        "gpu": "GPU server — One NVIDIA GPU, on the GPU pool.",  # a laptop knows no groups: offered
        "custom": "Choose your image",
    }
    assert options.preset_options == {
        "custom": {
            "image": {
                "display_name": "Image",
                "choices": {"scipy": "SciPy", "r": "R"},
                "default": "scipy",
                "unlisted": {
                    "display_name": "Other image",
                    "display_name_in_choices": None,
                    "validation_regex": r"^quay\.io/jupyter/[a-z-]+:[\w.-]+$",
                    "validation_message": "must be an image of quay.io/jupyter with a tag",
                },
            }
        }
    }


def test_each_preset_gives_its_profiles_settings(profiles: Path, repo: Path) -> None:
    mgr = SessionManager()

    def settings(preset: str | None, **more: object) -> dict[str, object]:
        fields: dict[str, object] = {"repo": str(repo), "prompt": "x", "backend": "kubernetes", **more}
        if preset:
            fields["preset"] = preset
        plan = mgr.plan(**fields)
        validate_manifests(plan.spec)
        return plan.settings.to_json()

    minimal = settings(None)  # the default profile, when nothing names a preset
    assert (minimal["preset"], minimal["cpu_limit"], minimal["memory_limit"]) == ("minimal-environment", 1000, 2 * GI)
    science = settings("datascience-environment")
    assert science["image"] == "quay.io/jupyter/datascience-notebook:2024-05-27"
    assert (science["pull_policy"], science["cpu_limit"], science["cpu_request"]) == ("if-not-present", 2000, 500)
    assert (science["memory_limit"], science["memory_request"]) == (4 * GI, GI)
    gpu = settings("gpu")
    assert (gpu["gpus"], gpu["gpu_resource"], gpu["memory_limit"]) == (1, "nvidia.com/gpu", 16 * GI)
    assert gpu["node_selector"] == {"cloud.google.com/gke-nodepool": "gpu"}
    assert gpu["tolerations"] == [
        {"operator": "Exists", "key": "nvidia.com/gpu", "effect": "NoSchedule", "tolerationSeconds": 60}
    ]
    custom = settings("custom")
    assert (custom["image"], custom["preset_options"]) == ("quay.io/jupyter/scipy-notebook:2024-05-27", None)
    r = settings("custom", preset_options="image=r")
    assert (r["image"], r["preset_options"]) == ("quay.io/jupyter/r-notebook:2024-05-27", {"image": "r"})
    mine = settings("custom", preset_options={"image": "quay.io/jupyter/julia-notebook:2024-05-27"})
    assert mine["image"] == "quay.io/jupyter/julia-notebook:2024-05-27"
    flag = settings("custom", image="quay.io/jupyter/minimal-notebook:x")  # a value you give beats the preset's
    assert flag["image"] == "quay.io/jupyter/minimal-notebook:x"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"preset": "custom", "preset_options": "image=docker.io/evil/miner:1"},
            "preset_options image=docker.io/evil/miner:1: must be an image of quay.io/jupyter with a tag",
        ),
        (
            {"preset": "custom", "preset_options": "imgae=r"},
            "preset_options imgae: preset 'custom' has no such option (its options: image) (did you mean 'image'?)",
        ),
        (
            {"preset": "small", "preset_options": "image=r"},
            "preset_options image: preset 'small' has no such option (its options: none)",
        ),
        ({"preset": "custom", "preset_options": "image"}, "preset_options 'image': expected NAME=VALUE pairs"),
    ],
)
def test_a_bad_option_is_one_line_naming_it(profiles: Path, repo: Path, fields: dict[str, str], message: str) -> None:
    with pytest.raises(Exception) as caught:
        SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes", **fields)
    line, code = describe(caught.value)
    assert line.startswith(message) and code == 2, line


def test_an_unlisted_value_is_then_checked_by_the_policy(profiles: Path, repo: Path, home: Path) -> None:
    policy = home / "policy.toml"
    policy.write_text('allowed_images = ["quay.io/jupyter/scipy-notebook:*", "quay.io/jupyter/r-notebook:*"]\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLAUDERON_POLICY", str(policy))
        with pytest.raises(
            PolicyError, match=r"image 'quay\.io/jupyter/julia-notebook:1' \(preset custom\) does not match"
        ):
            SessionManager().plan(
                repo=str(repo),
                prompt="x",
                backend="kubernetes",
                preset="custom",
                preset_options="image=quay.io/jupyter/julia-notebook:1",
            )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            'volumes = [{ name = "x" }]',
            "profile_list[0] ('P'): kubespawner_override key 'volumes' cannot be honoured by clauderon",
        ),
        ('extra_resource_limits = { "a/b" = 1, "c/d" = 1 }', "extra_resource_limits"),
        ('mem_limit = "lots"', "memory_limit 'lots'"),
    ],
)
def test_a_key_we_cannot_honour_is_refused_never_ignored(home: Path, repo: Path, override: str, message: str) -> None:
    (home / "config.toml").write_text(
        f'[[profile_list]]\ndisplay_name = "P"\n[profile_list.kubespawner_override]\n{override}\n'
    )
    with pytest.raises(ConfigError) as caught:
        SessionManager().plan(repo=str(repo), prompt="x", backend="kubernetes")
    line, _ = describe(caught.value)
    assert "config.toml" in line and message in line and "\n" not in line, line


def test_options_without_a_preset_are_refused(home: Path, repo: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        SessionManager().plan(repo=str(repo), prompt="x", backend="docker", preset_options="image=r")
    assert describe(caught.value) == (
        "preset_options: no preset is chosen to take them; give --preset (a profile's slug)",
        2,
    )


def test_a_profile_for_other_groups_is_neither_offered_nor_usable_on_the_service(profiles: Path, repo: Path) -> None:
    member = SessionManager(shared=True, groups=("gpu-users",), owner="ann")
    other = SessionManager(shared=True, groups=("students",), owner="bob")
    assert "gpu" in member.options().presets and "gpu" not in other.options().presets
    with pytest.raises(
        PolicyError, match=r"preset 'gpu' \(session\): only for members of the hub group\(s\) gpu-users"
    ):
        other.resolve(_request(repo, preset="gpu"))
    assert member.resolve(_request(repo, preset="gpu")).settings.gpus == 1


def _request(repo: Path, **fields: object) -> object:
    from clauderon_nb.model.request import CreateSessionRequest

    return CreateSessionRequest(repo=str(repo), prompt="x", backend="kubernetes", **fields)


def test_a_create_through_the_service_uses_the_services_profile(hub: Any, repo: Path, image: str) -> None:
    """The form through the service offers the service's profiles and their options; a create naming one
    sends the slug and the choices, and the service applies them (your kernel does not know them)."""
    from clauderon_nb.remote.client import RemoteManager
    from clauderon_nb.remote.wire import Endpoint

    config = hub.data_dir / "config.toml"
    before = config.read_text()
    config.write_text(
        before
        + f"""
[[profile_list]]
display_name = "Team image"
slug = "team"
description = "The team's image, small"
kubespawner_override = {{ image = "{image}", cpu_limit = 0.5 }}
[profile_list.profile_options.memory]
display_name = "Memory"
[profile_list.profile_options.memory.choices.small]
display_name = "64 MiB"
default = true
kubespawner_override = {{ mem_limit = "64M" }}
[profile_list.profile_options.memory.choices.large]
display_name = "128 MiB"
kubespawner_override = {{ mem_limit = "128M" }}
"""
    )
    mgr = RemoteManager(Endpoint(hub.service_url, hub.tokens["alice"]))
    try:
        options = mgr.options()
        assert options.presets["team"] == "Team image — The team's image, small"
        assert options.preset_options["team"]["memory"]["choices"] == {"small": "64 MiB", "large": "128 MiB"}
        session = mgr.create(repo=str(repo), prompt="x", agent="echo", preset="team", preset_options="memory=large")
        assert session.settings["image"] in (image, f"docker.io/{image}")  # as the service writes it, canonical
        assert (session.settings["cpu_limit"], session.settings["memory_limit"]) == (500, 128 * 1024**2)
        assert (session.settings["preset"], session.settings["preset_options"]) == ("team", {"memory": "large"})
        with pytest.raises(ConfigError, match="preset_options memory=huge: expected one of small, large"):
            mgr.create(repo=str(repo), prompt="x", agent="echo", preset="team", preset_options="memory=huge")
        # A repository's own file choosing the service preset's options needs trust, as choosing an image does.
        (repo / ".clauderon.toml").write_text('preset = "team"\npreset_options = { memory = "large" }\n')
        with pytest.raises(ConfigError, match="chooses the options memory=large of the service's preset 'team'"):
            mgr.create(repo=str(repo), prompt="x", agent="echo")
        (repo / ".clauderon.toml").unlink()
        mgr.delete(session.name)
    finally:
        config.write_text(before)
        for s in mgr.list():
            mgr.delete(s.name)


# --- the forms: the preset's options as a choice each, and a free value -----------------------------------


def test_the_notebook_form_offers_the_options_of_the_chosen_preset(profiles: Path, repo: Path) -> None:
    from clauderon_nb import CreateSessionForm
    from clauderon_nb.frontends.form_state import OTHER

    form = CreateSessionForm(SessionManager())
    form.fields["repo"].value = str(repo)
    form.fields["prompt"].value = "x"
    form.fields["backend"].value = "docker"
    assert form.option_box.children == ()  # no preset chosen: no options
    form.fields["preset"].value = "custom"
    choice, free = form._option_widgets["image"]
    assert list(choice.options) == [("SciPy", "scipy"), ("R", "r"), ("Other image…", OTHER)]
    assert choice.value == "scipy" and free is not None and free.layout.display == "none"
    assert "preset_options" not in form.values()  # the default choice is not repeated
    assert form.plan.settings.image == "quay.io/jupyter/scipy-notebook:2024-05-27"
    choice.value = "r"
    assert form.values()["preset_options"] == "image=r"
    assert form.plan.settings.image == "quay.io/jupyter/r-notebook:2024-05-27"
    assert "--preset-option image=r" in form.magic.value
    choice.value = OTHER
    assert free.layout.display == ""
    free.value = "docker.io/evil/miner:1"
    assert "must be an image of quay.io/jupyter with a tag" in form.errors["preset_options"].value
    assert form.create_button.disabled
    free.value = "quay.io/jupyter/julia-notebook:2024-05-27"
    assert form.errors["preset_options"].value == "" and not form.create_button.disabled
    assert form.plan.settings.image == "quay.io/jupyter/julia-notebook:2024-05-27"
    form.fields["preset"].value = "gpu"  # a preset without options: none shown
    assert form.option_box.children == () and "preset_options" not in form.values()


def test_the_terminal_form_offers_the_options_of_the_chosen_preset(profiles: Path, repo: Path) -> None:
    pytest.importorskip("textual", reason="the terminal UI needs textual: pip install -e '.[test]'")
    import asyncio

    from textual.widgets import Input, Select, Static, TextArea

    from clauderon_nb.frontends.form_state import OTHER
    from clauderon_nb.frontends.tui import ClauderonTUI, CreateScreen

    async def run() -> None:
        app = ClauderonTUI(SessionManager(), interval=3600)
        async with app.run_test(size=(110, 48)) as pilot:
            await pilot.press("n")
            screen = app.screen
            assert isinstance(screen, CreateScreen)
            screen.query_one("#f-repo", Input).value = str(repo)
            screen.query_one("#f-prompt", TextArea).load_text("x")
            screen.query_one("#f-backend", Select).value = "docker"
            screen.query_one("#f-preset", Select).value = "custom"
            await pilot.pause()
            choice = screen.query_one("#po-image", Select)
            free = screen.query_one("#pv-image", Input)
            assert choice.value == "scipy" and not free.display
            choice.value = "r"
            await pilot.pause()
            assert screen.values()["preset_options"] == "image=r"
            choice.value = OTHER
            await pilot.pause()
            free.value = "docker.io/evil/miner:1"
            await pilot.pause()
            assert free.display
            error = str(screen.query_one("#e-preset_options", Static).render())
            assert "must be an image of quay.io/jupyter with a tag" in error
            free.value = "quay.io/jupyter/julia-notebook:2024-05-27"
            await pilot.pause()
            assert str(screen.query_one("#e-preset_options", Static).render()) == ""
            assert screen.plan is not None and screen.plan.settings.image.endswith("julia-notebook:2024-05-27")

    asyncio.run(run())


def test_an_unlisted_choice_reads_as_the_profile_says_among_the_choices(home: Path) -> None:
    from clauderon_nb.frontends.form_state import OTHER, option_fields

    (home / "config.toml").write_text(
        '[[profile_list]]\ndisplay_name = "Any"\nslug = "any"\n'
        "[profile_list.profile_options.image]\ndisplay_name = 'Image'\n"
        "unlisted_choice = { enabled = true, display_name = 'Image', display_name_in_choices = 'Enter an image', "
        "kubespawner_override = { image = '{value}' } }\n"
    )
    (field,) = option_fields(SessionManager().options(), "any")
    assert (field.choices, field.default, field.free_label) == ([("Enter an image", OTHER)], OTHER, "Image: Image")


def test_a_repository_that_picks_the_presets_image_by_its_options_needs_trust(
    profiles: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repository's file naming a preset picks among your own settings; naming its option's free value picks
    the image that would get your credentials: that needs trust, as naming an image does."""
    with profiles.open("a") as f:
        f.write('\n[agents.cred]\ncommand = ["sh", "-c", "echo done"]\npass_env_optional = ["MY_AGENT_TOKEN"]\n')
    monkeypatch.setenv("MY_AGENT_TOKEN", "tok-VERYSECRET")
    mgr = SessionManager()
    (repo / ".clauderon.toml").write_text('preset = "custom"\n')
    assert not mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="cred").needs_trust
    (repo / ".clauderon.toml").write_text(
        'preset = "custom"\npreset_options = { image = "quay.io/jupyter/julia-notebook:1" }\n'
    )
    plan = mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="cred")
    assert plan.needs_trust and "chooses image 'quay.io/jupyter/julia-notebook:1'" in repr(plan)
    # your own choice of the option is yours: nothing to confirm
    own = mgr.plan(repo=str(repo), prompt="x", backend="docker", agent="cred", preset_options="image=r")
    assert not own.needs_trust and own.settings.image == "quay.io/jupyter/r-notebook:2024-05-27"


#: The same profiles as Zero to JupyterHub's Helm values hold them (what an admin already has).
Z2JH_VALUES = r"""
singleuser:
  profileList:
    - display_name: "Minimal environment"
      description: "To avoid too much bells and whistles: Python."
      default: true
      kubespawner_override:
        cpu_limit: 1
        mem_limit: 2G
    - display_name: "Datascience environment"
      description: "If you want the additional bells and whistles: Python, R, and Julia."
      kubespawner_override:
        image: quay.io/jupyter/datascience-notebook:2024-05-27
        image_pull_policy: IfNotPresent
        cpu_limit: 2
        cpu_guarantee: 0.5
        mem_limit: 4G
        mem_guarantee: 1G
    - display_name: "GPU server"
      slug: gpu
      description: "One NVIDIA GPU, on the GPU pool."
      allowed_groups: [gpu-users]
      kubespawner_override:
        image: quay.io/jupyter/pytorch-notebook:cuda12-2024-05-27
        mem_limit: 16G
        extra_resource_limits:
          nvidia.com/gpu: "1"
        node_selector:
          cloud.google.com/gke-nodepool: gpu
        tolerations:
          - key: nvidia.com/gpu
            operator: Exists
            effect: NoSchedule
            tolerationSeconds: 60
    - display_name: "Choose your image"
      slug: custom
      profile_options:
        image:
          display_name: Image
          choices:
            scipy:
              display_name: SciPy
              default: true
              kubespawner_override:
                image: quay.io/jupyter/scipy-notebook:2024-05-27
            r:
              display_name: R
              kubespawner_override:
                image: quay.io/jupyter/r-notebook:2024-05-27
          unlisted_choice:
            enabled: true
            display_name: Other image
            validation_regex: '^quay\.io/jupyter/[a-z-]+:[\w.-]+$'
            validation_message: must be an image of quay.io/jupyter with a tag
            kubespawner_override:
              image: "{value}"
"""


def test_the_helm_values_an_admin_has_give_the_same_presets(home: Path, repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("yaml", reason="reading YAML needs PyYAML (it comes with JupyterHub)")
    from clauderon_nb.config.files import load_user_config, presets_of

    (home / "config.toml").write_text(PROFILE_LIST)
    from_toml = presets_of(load_user_config(home))
    values = tmp_path / "values.yaml"
    values.write_text(Z2JH_VALUES)
    (home / "config.toml").write_text(f'profile_list_file = "{values}"\n')
    assert presets_of(load_user_config(home)) == from_toml
    values.write_text(Z2JH_VALUES.replace("mem_limit: 16G", "mem_limit: 16G\n        lifecycle_hooks: {}"))
    with pytest.raises(ConfigError, match=r"profile 2 \('GPU server'\): kubespawner_override key 'lifecycle_hooks'"):
        presets_of(load_user_config(home))
