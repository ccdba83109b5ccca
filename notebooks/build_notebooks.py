"""Write the example notebooks from the cells below and execute them to store their outputs.

    python notebooks/build_notebooks.py      # needs a Docker engine, like CI

The notebooks are tests too (`pytest --nbval`): after changing a cell here, rebuild
and commit both this file and the notebooks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

SETUP = """from clauderon_demo import Demo  # notebooks/clauderon_demo.py: example set-up, not the product

demo = Demo.start()  # a scratch CLAUDERON_HOME, a demo git repository, and a tiny image when Docker is here"""
TEARDOWN = "demo.stop()"

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01-quickstart.ipynb": [
        (
            "md",
            "# Quickstart\n\nclauderon-nb starts AI coding agents on a git repository, each in a workspace of "
            "its own (a checkout with its own git directory, on its own branch), in a Docker container, a "
            "Kubernetes pod or a local process — from notebook cells.\n\n"
            "This notebook uses a scratch setup so it runs anywhere: on a machine with a Docker engine the "
            "sessions are containers; elsewhere (Binder, for instance) they are local processes, and the "
            "first cell says which. The agent here is a stand-in that prints its prompt; yours would be "
            "`claude`, `codex`, `gemini` or any command you configure.",
        ),
        ("code", SETUP),
        ("md", "Load the extension: this registers `%clauderon` and `%%clauderon` and imports nothing heavy."),
        ("code", "%load_ext clauderon_nb"),
        (
            "md",
            "Create a session: a repository, a prompt and a name (without `--name` one is made from the "
            "prompt). The result is the session; its image and limits come from the configuration.",
        ),
        ("code", '%clauderon create --repo {demo.repo} --name first --prompt "Add a CONTRIBUTING file"'),
        ("code", "%clauderon list"),
        (
            "code",
            'demo.wait_for_logs("first")  # the agent has just started: wait for its first line\n%clauderon logs first',
        ),
        ("md", "`attach` prints the terminal command that connects you to the agent."),
        ("code", "%clauderon attach first"),
        ("code", "%clauderon stop first"),
        ("code", "%clauderon start first"),
        ("md", "With `%%clauderon` the cell body is the prompt — handy for long, multi-line instructions."),
        (
            "code",
            "%%clauderon create --repo {demo.repo} --name second\nRead README.md.\n"
            "Then suggest three improvements, one per line.",
        ),
        ("code", 'demo.wait_for_logs("second")\n%clauderon logs second'),
        (
            "md",
            "The agent's branch lives in its workspace; `fetch` brings it into your repository as "
            "`clauderon/NAME` (read back as data and checked by git: nothing the agent wrote runs on your "
            "machine). `delete` removes the container or process, the workspace and the record (it asks first "
            "unless `-f`); a branch with commits is brought back and kept.",
        ),
        ("code", "%clauderon fetch first"),
        ("code", "%clauderon delete first -f\n%clauderon delete second -f"),
        (
            "md",
            "## The same from Python\n\n`SessionManager` is what the magic, the form and the "
            "`clauderon-nb` command all call.",
        ),
        (
            "code",
            "from clauderon_nb import CreateSessionRequest, SessionManager\n\n"
            "mgr = SessionManager()\n"
            'request = CreateSessionRequest(repo=demo.repo, prompt="Summarise the README", name="api")\n'
            "session = mgr.create(request)\nsession",
        ),
        ("code", "mgr.list()"),
        ("code", 'mgr.delete("api")\nmgr.list()'),
        ("code", TEARDOWN),
    ],
    "02-advanced-container-settings.ipynb": [
        (
            "md",
            "# Advanced container settings\n\nImage, pull policy, CPU and memory — per session, per "
            "repository, per user — and where every effective value comes from.",
        ),
        ("code", SETUP + "\n%load_ext clauderon_nb"),
        (
            "md",
            "## Values and their canonical forms\n\nEvery entry point uses the same parsers. CPU is held as "
            "millicores and memory as bytes; **every memory suffix is 1024-based** (`512m` = 512 MiB), on "
            "Docker and Kubernetes alike. Image references follow Docker's grammar, digests included.",
        ),
        (
            "code",
            "from clauderon_nb import PullPolicy, parse_cpu, parse_image, parse_memory\n\n"
            'print(parse_cpu("500m"), parse_cpu("2"), parse_cpu(0.25))\n'
            'print(parse_memory("512m"), parse_memory("4Gi"), parse_memory("1.5g"))\n'
            'print(parse_image("ubuntu"), parse_image("ghcr.io/team/dev:1@sha256:" + "a" * 64), sep="\\n")\n'
            'print(PullPolicy.parse("IfNotPresent"), PullPolicy.parse("IfNotPresent").kubernetes)',
        ),
        (
            "md",
            "## A dry run shows every effective value and its source\n\n`--dry-run` creates nothing. It "
            "shows the resolved settings, where each comes from, and the exact arguments for the Docker "
            "engine (secrets would show as `***`).",
        ),
        (
            "code",
            '%clauderon create --repo {demo.repo} --name plan --prompt "Refactor" --backend docker '
            "--image clauderon-examples/busybox:1 --pull-policy if-not-present --cpu-limit 0.5 "
            "--memory-limit 256m --dry-run",
        ),
        (
            "md",
            "## Presets\n\n`small`, `medium` and `large` are built in; `config.toml` can add more. Values given "
            "explicitly win over the preset's, field by field.",
        ),
        (
            "code",
            "%clauderon create --repo {demo.repo} --name p --prompt x --backend docker --preset large "
            "--memory-limit 6g --dry-run",
        ),
        (
            "md",
            "## The configuration hierarchy\n\nHighest first: the session's own values, a preset it names, the "
            "repository's `.clauderon.toml`, your `docker-config.toml` / `k8s-config.toml`, the admin policy, "
            "built-in defaults. `%clauderon config` shows the effective values for a backend.",
        ),
        (
            "code",
            'demo.write("docker-config.toml", \'network = "none"\\n\\n[image]\\n'
            'image = "clauderon-examples/busybox:1"\\npull_policy = "never"\\n\\n[resources]\\ncpu = "1"\\n'
            'memory = "1g"\\n\')\n%clauderon config --backend docker --repo {demo.repo}',
        ),
        (
            "code",
            'demo.write(".clauderon.toml", \'memory_limit = "512m"\\npreset = "small"\\n\')\n'
            "%clauderon config --backend docker --repo {demo.repo}",
        ),
        (
            "md",
            "The repository file overrides the user file for memory only; the CPU comes from the `small` "
            "preset that the repository file names. A flag overrides both:",
        ),
        (
            "code",
            "real = %clauderon create --repo {demo.repo} --name real --prompt 'Tidy up' --backend docker "
            "--cpu-limit 0.5",
        ),
        ("code", "%clauderon show real"),
        (
            "md",
            "The limits are what the engine enforces. The container's name carries a hash of its owner "
            "(`clauderon-real-…`), so users sharing an engine never collide:",
        ),
        (
            "code",
            'import docker\n\nhost = docker.from_env().api.inspect_container(real.runtime["container"])["HostConfig"]\n'
            'print(host["NanoCpus"], host["Memory"], host["Init"], host["NetworkMode"])',
        ),
        ("code", "%clauderon delete real -f"),
        (
            "md",
            "## Bad input\n\nEvery mistake is one line that names the field, the value and what is accepted "
            "— and nothing is created.",
        ),
        ("code", "# NBVAL_RAISES_EXCEPTION\n%clauderon create --repo {demo.repo} --prompt x --memory-limit 2x"),
        ("code", "# NBVAL_RAISES_EXCEPTION\n%clauderon create --repo {demo.repo} --prompt x --image MyOrg/app"),
        ("code", "# NBVAL_RAISES_EXCEPTION\n%clauderon create --repo {demo.repo} --prompt x --cpu-lmit 2"),
        (
            "code",
            "# NBVAL_RAISES_EXCEPTION\n%clauderon create --repo {demo.repo} --prompt x --backend docker "
            "--cpu-request 2 --cpu-limit 1",
        ),
        ("code", TEARDOWN),
    ],
    "03-widgets.ipynb": [
        (
            "md",
            "# The form and the session list\n\n`%clauderon form` shows a form whose fields come from the same "
            "request model as the magic. It validates as you type, shows each error beside its field, keeps "
            "**Create** disabled while anything is wrong, and shows the effective default (and where it "
            "comes from) as each field's placeholder. Its **Advanced Container Settings** section holds the "
            "image, pull policy, CPU and memory.\n\n![The form with an inline error]"
            "(../docs/img/form-advanced-error.png)",
        ),
        ("code", SETUP + "\n%load_ext clauderon_nb"),
        ("code", "from clauderon_nb import CreateSessionForm, SessionList\n\nform = CreateSessionForm()\nform"),
        (
            "md",
            "The widget can be driven from code too, which is how it is tested: set a field, read its "
            "error and the button's state.",
        ),
        (
            "code",
            'form.fields["repo"].value = str(demo.repo)\nform.fields["prompt"].value = "Write tests"\n'
            'form.fields["name"].value = "from-form"\nform.fields["memory_limit"].value = "2x"\n'
            "print(form.create_button.disabled)",
        ),
        (
            "code",
            'form.fields["memory_limit"].value = "128m"\nprint(form.create_button.disabled)\nprint(form.magic.value)',
        ),
        ("code", "session = form.create()\nsession"),
        (
            "md",
            "The session list shows your sessions with logs, stop/start and delete buttons; **Refresh** "
            "costs one backend call.\n\n![The session list](../docs/img/session-list.png)",
        ),
        ("code", "sessions = SessionList()\nsessions"),
        ("code", "%clauderon delete from-form -f\nsessions.refresh()\nprint(repr(sessions))"),
        ("code", TEARDOWN),
    ],
    "04-kubernetes.ipynb": [
        (
            "md",
            "# Kubernetes\n\nOn Kubernetes a session is a pod with a workspace volume: an init container "
            "clones the repository's remote and creates the session branch, then the agent runs with the "
            "image, pull policy, requests and limits you chose. No cluster is needed to see exactly what "
            "would be created: a dry run renders the manifests.",
        ),
        ("code", SETUP),
        (
            "code",
            'demo.write("k8s-config.toml", \'namespace_template = "clauderon-{owner}"\\n'
            'image = "ghcr.io/team/agent:2"\\nimage_pull_policy = "IfNotPresent"\\n'
            'image_pull_secrets = ["ghcr-pull"]\\nservice_account = "clauderon-agent"\\n'
            'storage_class = "standard"\\nworkspace_size = "5Gi"\\n\')',
        ),
        (
            "md",
            "`namespace_template` gives every JupyterHub user their own namespace. Requests and limits: "
            "a limit without a request makes the request equal to the limit, as Kubernetes does; here the "
            "CPU request is set lower than the limit.",
        ),
        (
            "code",
            'import os\n\nfrom clauderon_nb import SessionManager\n\nos.environ["JUPYTERHUB_USER"] = '
            '"alice"\nplan = SessionManager().plan(repo=demo.repo, prompt="Fix the flaky test", '
            'backend="kubernetes", name="k8s-demo", cpu_request="500m", cpu_limit="2", '
            'memory_limit="4g")\nplan',
        ),
        ("md", "The manifests are checked against the real Kubernetes schemas:"),
        (
            "code",
            'import kubernetes_validate\n\nfor manifest in plan.spec:\n    for version in ("1.30.0", '
            '"1.37.0"):\n        kubernetes_validate.validate(manifest, version, strict=True)\n'
            '    print(manifest["kind"], "is valid for Kubernetes 1.30 and 1.37")',
        ),
        (
            "md",
            "Agent credentials never go into the pod spec: an agent's `pass_env` variables are copied into "
            "a per-session Secret the pod refers to (or name an existing Secret with `env_from_secret`). "
            "Creating sessions needs the permissions in `docs/kubernetes/rbac.yaml`; a missing one is "
            "reported in one line that names it.",
        ),
        ("code", 'del os.environ["JUPYTERHUB_USER"]\n' + TEARDOWN),
    ],
    "05-jupyterhub-admin.ipynb": [
        (
            "md",
            "# Administering a shared JupyterHub\n\nAn admin policy file (`/etc/clauderon/policy.toml`, or "
            "`$CLAUDERON_POLICY`) bounds what every user can ask for. In a user's own kernel it is advisory "
            "(the kernel is theirs); on a shared hub the clauderon service applies it where users cannot change "
            "it (see `06-jupyterhub-service.ipynb`). This notebook writes one into the demo folder and shows "
            "what users see.",
        ),
        ("code", SETUP + "\n%load_ext clauderon_nb"),
        (
            "code",
            'import os\n\npolicy = demo.write("policy.toml", \'allowed_images = ["clauderon-examples/*", '
            '"docker.io/clauderon-examples/*", "ghcr.io/team/*"]\\nmax_cpu = "1"\\n'
            'max_memory = "2g"\\nallowed_backends = ["docker", "local"]\\n'
            'allowed_pull_policies = ["if-not-present", "never"]\\ndefault_preset = "small"\\n\')\n'
            'os.environ["CLAUDERON_POLICY"] = str(policy)',
        ),
        (
            "md",
            "The policy's default preset applies when a user names none, and its source says so. Without "
            "a default preset, the maximums themselves would be the default limits.",
        ),
        ("code", "%clauderon config --backend docker --repo {demo.repo}"),
        ("md", "Requests outside the policy are refused with a `PolicyError` that names the rule and the value:"),
        (
            "code",
            "# NBVAL_RAISES_EXCEPTION\n%clauderon create --repo {demo.repo} --prompt x --backend docker --cpu-limit 2",
        ),
        (
            "code",
            "# NBVAL_RAISES_EXCEPTION\n%clauderon create --repo {demo.repo} --prompt x --backend docker --image ubuntu",
        ),
        ("code", "# NBVAL_RAISES_EXCEPTION\n%clauderon create --repo {demo.repo} --prompt x --backend kubernetes"),
        ("md", "Within the bounds, sessions are created as usual:"),
        (
            "code",
            '%clauderon create --repo {demo.repo} --name ok --prompt "Within bounds" --backend docker '
            "--memory-limit 256m",
        ),
        ("md", "An inconsistent policy is reported once, about the file, rather than as every user's error:"),
        (
            "code",
            "# NBVAL_RAISES_EXCEPTION\npolicy.write_text(policy.read_text().replace('max_memory = \"2g\"', "
            "'max_memory = \"1g\"'))\n%clauderon config --backend docker --repo {demo.repo}",
        ),
        (
            "code",
            "policy.write_text(policy.read_text().replace('max_memory = \"1g\"', 'max_memory = \"2g\"'))\n"
            'print("restored max_memory = 2g")',
        ),
        ("code", "%clauderon delete ok -f"),
        ("md", "The form offers only what the policy allows and states the bounds:"),
        (
            "code",
            "from clauderon_nb import CreateSessionForm\n\nform = CreateSessionForm()\n"
            'print([value for _, value in form.fields["backend"].options])\n'
            'print([value for _, value in form.fields["pull_policy"].options])\n'
            "print(form.policy_hint.value)",
        ),
        ("code", 'del os.environ["CLAUDERON_POLICY"]\n' + TEARDOWN),
    ],
    "06-jupyterhub-service.ipynb": [
        (
            "md",
            "# A hub user's view: sessions through the clauderon service\n\nOn a shared JupyterHub the "
            "clauderon service (`clauderon-nb serve`) holds the Docker engine; users' servers do not. Every "
            "request carries the user's hub token, and the service applies the admin policy itself. This "
            "notebook starts a real JupyterHub on 127.0.0.1 with the service registered (users alice, bob and "
            "the hub admin `admin`) and plays each user from this kernel. It needs a Docker engine and "
            "`configurable-http-proxy`; set-up for real hubs is in `docs/jupyterhub.md`.",
        ),
        (
            "code",
            SETUP + "\nfrom clauderon_demo import DemoHub\n\nhub = DemoHub.for_demo(demo)",
        ),
        (
            "md",
            "A user's notebook server has `JUPYTERHUB_API_URL` and its token; with those, the magics find the "
            "service in the hub's registry and use it. `login` sets them as alice's server has them.",
        ),
        ("code", 'hub.login("alice")\n%load_ext clauderon_nb'),
        (
            "md",
            "The same commands as on a laptop. The repository travels to the service as a git bundle (only the "
            "commits it does not have yet); the service makes the session's workspace and the container.",
        ),
        ("code", '%clauderon create --repo {demo.repo} --name hello --prompt "Say hello from the service"'),
        ("code", 'hub.wait_for_logs("alice", "hello")\n%clauderon logs hello'),
        ("code", "%clauderon list"),
        (
            "md",
            "Bob shares the engine but not the sessions: alice's session is not found for him, exactly as if "
            "it did not exist, and `list --all` is for admins.",
        ),
        ("code", 'hub.login("bob")\n%clauderon list'),
        ("code", "# NBVAL_RAISES_EXCEPTION\n%clauderon show hello"),
        ("code", "# NBVAL_RAISES_EXCEPTION\n%clauderon list --all"),
        (
            "md",
            "The admin policy is the service's file. Nothing in a user's kernel changes it: a request beyond "
            "it is refused by the service, and arrives as the same `PolicyError` line.",
        ),
        ("code", 'hub.write_policy(\'max_cpu = "1"\\nallowed_backends = ["docker"]\\n\')'),
        (
            "code",
            "# NBVAL_RAISES_EXCEPTION\n%clauderon create --repo {demo.repo} --prompt x --cpu-limit 2",
        ),
        ("code", "# NBVAL_RAISES_EXCEPTION\n%clauderon create --repo {demo.repo} --prompt x --backend kubernetes"),
        ("md", "The hub admin sees every user's sessions:"),
        ("code", 'hub.login("admin")\n%clauderon list --all'),
        (
            "md",
            "Alice brings the session's branch back into her repository with `fetch` (here the agent made no "
            "commits, so the branch points at where it started):",
        ),
        ("code", 'hub.login("alice")\n%clauderon fetch hello --repo {demo.repo}'),
        ("code", "!git -C {demo.repo} --no-pager branch --no-color --list 'clauderon/*'"),
        ("code", "%clauderon delete hello -f"),
        ("code", "hub.stop()\n" + TEARDOWN),
    ],
}


NOTEBOOKS["07-images.ipynb"] = [
    (
        "md",
        "# Images: browse a registry, build from the repository, use its devcontainer.json\n\n"
        "Where a session's image comes from, and how clauderon-nb makes sure it is there before anything is "
        "created. This notebook runs a registry of its own on this machine (Debian's `docker-registry`, with "
        "a password), so it needs a Docker engine; see `docs/images.md` for the details.",
    ),
    ("code", SETUP),
    ("code", "%load_ext clauderon_nb"),
    (
        "md",
        "A registry with a password, three tags of one repository and one of another, and a `docker login` "
        "for it (a `config.json` in `$DOCKER_CONFIG`, as the docker command writes it).",
    ),
    (
        "code",
        "import docker\nfrom clauderon_demo import DemoRegistry\n\n"
        "registry = DemoRegistry.start()\nregistry.login()\nengine = docker.from_env()\n"
        'for tag in ("1.0", "1.1", "2.0"):\n    registry.push(engine, demo.image, "team/tools", tag)\n'
        'registry.push(engine, demo.image, "team/base", "latest")\n'
        'print(f"registry {registry.host}: team/tools and team/base pushed; docker login done")',
    ),
    (
        "md",
        "## Browse\n\n`%clauderon images REGISTRY` lists its repositories (where the registry allows a catalog; "
        "Docker Hub and GHCR do not, so name the repository there). `REGISTRY/REPOSITORY` lists its tags with "
        "digest, size and created time. The same works as `clauderon-nb images …`. Basic auth and the "
        "bearer-token flow of Docker Hub and GHCR both work.",
    ),
    ("code", "%clauderon images {registry.host}"),
    (
        "md",
        "With an admin policy, every image is marked allowed or not: here only the 1.x tags are allowed.",
    ),
    (
        "code",
        "import os\n"
        'policy = demo.write("policy.toml", f\'allowed_images = ["{registry.host}/team/tools:1.*"]\\n\')\n'
        'os.environ["CLAUDERON_POLICY"] = str(policy)',
    ),
    ("code", "%clauderon images {registry.host}/team/tools"),
    (
        "md",
        "`%clauderon images` alone shows the policy's images and the engine's own. The form's and the "
        "terminal UI's image fields offer all of these as suggestions (loaded in the background; typing "
        "`REGISTRY/REPOSITORY:` fetches that repository's tags).",
    ),
    ("code", 'del os.environ["CLAUDERON_POLICY"]'),
    (
        "md",
        "## The image check\n\nBefore any workspace or container is made, the image is checked: on the engine "
        "for `never` and `if-not-present`, and in its registry (a manifest request with your credentials) "
        "for `always` and for Kubernetes sessions. A missing tag, a missing repository, refused credentials "
        "and an unreachable registry are four different lines, each naming the image. `--dry-run` runs the "
        "same check and says what it found.",
    ),
    (
        "code",
        "from clauderon_nb import ClauderonError, SessionManager\n\n"
        "def check(image):\n"
        "    try:\n"
        '        plan = SessionManager().plan(repo=demo.repo, prompt="x", image=image, pull_policy="always", '
        "check_image=True)\n"
        '        print("ok:", plan.image_check)\n'
        "    except ClauderonError as exc:\n"
        '        print("error:", exc)\n\n'
        'check(f"{registry.host}/team/tools:1.1")\n'
        'check(f"{registry.host}/team/tools:9.9")\n'
        'check(f"{registry.host}/team/nothing:1")\n'
        'check("127.0.0.1:9/team/tools:1.1")  # nothing listens on port 9\n'
        'registry.config_json(registry.workdir / "docker-config", password="an-old-password")\n'
        'check(f"{registry.host}/team/tools:1.1")\n'
        "registry.login()  # the right password again",
    ),
    (
        "md",
        "Offline or air-gapped, `registry_check = false` in `docker-config.toml` (`[image]`) or "
        "`k8s-config.toml` turns the registry request off; the dry run says so.",
    ),
    (
        "md",
        "## Build from the repository\n\n`[build]` in `.clauderon.toml` (or `--build` / the form's "
        "*Dockerfile* field) builds the session image with the engine from the repository's committed files. "
        "The tag is a hash of the context, the Dockerfile, the build args and the target, so an unchanged "
        "repository is never built twice.",
    ),
    (
        "code",
        "demo.commit(\n"
        "    {\n"
        '        "Dockerfile": f"FROM {demo.image}\\nARG GREETING\\nRUN echo \\"$GREETING\\" > /greeting\\n",\n'
        '        ".clauderon.toml": \'[build]\\ndockerfile = "Dockerfile"\\nargs = { GREETING = "hello from the '
        "build\" }\\n',\n"
        "    },\n"
        '    "Build the session image from the repository",\n'
        ")\n"
        'plan = SessionManager().plan(repo=demo.repo, prompt="x", check_image=True)\n'
        'print(plan.settings.image, "-", plan.origins["image"].replace(str(demo.repo), "<repo>"))\n'
        "print(plan.image_check)",
    ),
    (
        "code",
        "def show_build(event):  # the build's steps, without each line of its output\n"
        '    if event.step == "note" or (event.step == "build" and not event.detail):\n'
        "        print(event.message)\n\n"
        'first = SessionManager().create(repo=demo.repo, prompt="Use the built image", name="built", '
        "progress=show_build)",
    ),
    (
        "code",
        'again = SessionManager().create(repo=demo.repo, prompt="Again", name="built-again", progress=show_build)\n'
        'print(first.settings["image"] == again.settings["image"])',
    ),
    (
        "md",
        "An admin policy turns builds off unless it says `allow_builds = true`, and built images must still "
        "match `allowed_images` (`localhost/clauderon-build/*` on Docker).",
    ),
    (
        "md",
        "## devcontainer.json\n\nA repository's `.devcontainer/devcontainer.json` (comments and trailing commas "
        "allowed) is a settings layer of its own, `devcontainer`, just below `.clauderon.toml`. Its `image` or "
        "`build`, `containerEnv`, `containerUser`/`remoteUser` and `postCreateCommand` are used; keys it sets "
        "that clauderon-nb does not support are listed once as ignored.",
    ),
    (
        "code",
        "demo.commit(\n"
        "    {\n"
        '        ".clauderon.toml": None,\n'
        '        ".devcontainer/devcontainer.json": """{\n'
        "  // the editor reads this file too\n"
        '  "build": { "dockerfile": "../Dockerfile", "context": "..", "args": { "GREETING": "from devcontainer" } },\n'
        '  "containerEnv": { "PROJECT_MODE": "dev" },\n'
        '  "containerUser": "1000:1000",\n'
        '  "postCreateCommand": "echo preparing the workspace && cat /greeting",\n'
        '  "features": { "ghcr.io/devcontainers/features/node:1": {} },\n'
        '  "forwardPorts": [8888],\n'
        "}\n"
        '""",\n'
        "    },\n"
        '    "A dev container",\n'
        ")",
    ),
    ("code", "%clauderon config --repo {demo.repo} --backend docker"),
    (
        "code",
        'dev = SessionManager().create(repo=demo.repo, prompt="Work in the dev container", name="dev", '
        "progress=show_build)\n"
        'demo.wait_for_logs("dev")\n'
        "dev",
    ),
    ("code", "%clauderon logs dev"),
    ("code", TEARDOWN + "\nregistry.stop()"),
]


def build(name: str, cells: list[tuple[str, str]]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in cells:
        nb.cells.append(nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source))
    NotebookClient(
        nb, timeout=300, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(HERE)}}
    ).execute()
    for cell in nb.cells:
        cell.pop("id", None)
        if cell.cell_type == "code":
            cell.metadata = {}
    nbformat.write(nb, HERE / name)
    print(f"wrote {name}")


if __name__ == "__main__":
    wanted = sys.argv[1:] or list(NOTEBOOKS)
    for name in wanted:
        build(name, NOTEBOOKS[name])
