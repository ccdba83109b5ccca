"""list() with 100 sessions: against 1 session (target <= 3x), and against the engine's own listing of the
same containers with docker-py (``containers(all=True, filters=…)``, the least any list must do; target
<= 1.2x). Also how many engine API calls each makes."""

from __future__ import annotations

import sys
from typing import Any

from _common import busybox_image, median_time, median_times, scratch

MANY = 100


def count_calls(mgr: Any) -> list[str]:
    """Every engine API call from now on: through docker-py, or straight to the unix socket."""
    from clauderon_nb.backends import docker as docker_backend

    api = mgr.backend("docker").client.api
    calls: list[str] = []
    original, raw = api.send, docker_backend.get_json

    def counting(request: Any, **kwargs: Any) -> Any:
        calls.append(f"{request.method} {request.path_url.split('?')[0]}")
        return original(request, **kwargs)

    def counting_raw(path: Any, url: str, *args: Any) -> Any:
        calls.append(f"GET {url}")
        return raw(path, url, *args)

    api.send = counting
    docker_backend.get_json = counting_raw  # type: ignore[assignment]
    return calls


def main() -> None:
    from clauderon_nb import SessionManager

    with scratch() as (_home, repo), busybox_image() as image:
        mgr = SessionManager()

        def create(name: str) -> None:
            mgr.create(
                repo=str(repo),
                prompt="bench",
                backend="docker",
                agent="sleeper",
                image=image,
                pull_policy="never",
                name=name,
                wait=False,
            )

        create("s0")
        calls = count_calls(mgr)
        t_one = median_time(mgr.list, 21)
        one_calls = len(calls) / 21
        for i in range(1, MANY):
            create(f"s{i}")
        calls.clear()
        t_many = median_time(mgr.list, 21)
        many_calls = len(calls) / 21
        assert len(mgr.list()) == MANY
        api = mgr.backend("docker").client.api
        labels = {"label": ["clauderon.io/managed=true"]}
        # Against the engine: the two in turn, 41 times (the engine's answer time drifts on a busy machine).
        t_listed, t_engine = median_times(mgr.list, lambda: api.containers(all=True, filters=labels), 41)
        for s in mgr.list():
            mgr.delete(s.name)
    print(
        f"list: 1 session {t_one * 1000:.1f}ms ({one_calls:.0f} engine call), {MANY} sessions "
        f"{t_many * 1000:.1f}ms ({many_calls:.0f} engine call); ratio {t_many / t_one:.2f}x\n"
        f"list of {MANY} ({t_listed * 1000:.1f}ms) vs the engine's own listing {t_engine * 1000:.1f}ms, in turn: "
        f"ratio {t_listed / t_engine:.2f}x "
        "(target <= 1.2x)"
    )


if __name__ == "__main__":
    sys.exit(main())
