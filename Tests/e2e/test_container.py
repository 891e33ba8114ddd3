"""The container image: `mip6 ha` running inside it (podman, --privileged, in the testbed's
HA network namespace, on the testbed's bpffs) registers a mobile node and tunnels the
correspondent's pings, and `podman stop` ends it with exit status 0.

The image is built (or refreshed) by scripts/container, which installs podman, runc and
debootstrap when missing: set MIP6_IMAGE to test an image built elsewhere (e.g. by
`docker build` in a registry-connected CI) instead. Skipped only when not root (conftest);
a failure to build the image fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ATTACH_MODE, READY_TIMEOUT, REPO_ROOT, HarnessError, HomeAgent
from test_home_agent import PINGS, ping_through, register_ok

CONTAINERS_CONF = REPO_ROOT / ".build-container" / "containers.conf"
BUILD_TIMEOUT = 1800        # a cold scripts/container: apt, debootstrap, a full static build


def podman(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))
    cp = subprocess.run(["podman", *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and cp.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} exited {cp.returncode}: {cp.stderr.strip()}", pytrace=False)
    return cp


@pytest.fixture(scope="session")
def mip6_image() -> str:
    """MIP6_IMAGE as it is, or localhost/mip6:dev freshly built by scripts/container."""
    given = os.environ.get("MIP6_IMAGE")
    if given:
        if not (shutil.which("podman") and CONTAINERS_CONF.is_file()):
            pytest.fail(f"MIP6_IMAGE={given} but podman is not set up: run scripts/container once", pytrace=False)
        if podman("image", "exists", given, check=False).returncode != 0:
            pytest.fail(f"MIP6_IMAGE={given}: no such image in podman's storage", pytrace=False)
        return given
    t0 = time.monotonic()
    cp = subprocess.run([str(REPO_ROOT / "scripts" / "container")], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=BUILD_TIMEOUT, env=dict(os.environ, MIP6_IMAGE="localhost/mip6:dev"))
    print(cp.stdout, cp.stderr, sep="")
    if cp.returncode != 0:
        pytest.fail(f"scripts/container exited {cp.returncode}:\n{cp.stdout[-3000:]}\n{cp.stderr[-3000:]}",
                    pytrace=False)
    print(f"scripts/container: {time.monotonic() - t0:.1f} s")
    return "localhost/mip6:dev"


@pytest.fixture
def container_daemon(request, testbed, mip6_bin, mip6_image, tmp_path) -> HomeAgent:
    """`mip6 ha` with the arguments conftest.daemon gives it, run by `podman run` in the HA
    namespace; the CLI (bindings, stats) runs the host's binary on the same pins."""
    name = f"mip6-ha-{testbed.tag}"
    d = HomeAgent(testbed, mip6_bin, tmp_path / "mip6-ha-container.log", attach_mode=ATTACH_MODE)
    state_dir = Path(d.state_dir)

    def launcher(argv: list[str]) -> list[str]:
        return ["env", f"CONTAINERS_CONF={CONTAINERS_CONF}", "podman", "run", "--rm", "--pull=never", "--name", name, "--privileged",
                # the testbed's HA namespace; the testbed's private bpffs where the HA's own
                # processes see it (/sys/fs/bpf, so --bpffs is the same path); the state
                # directory shared with `mip6 stats` on the host
                "--network", f"ns:/run/netns/{testbed.ns('ha')}",
                "-v", f"{testbed.BPFFS}:/sys/fs/bpf",
                "-v", f"{state_dir}:{state_dir}",
                mip6_image, *argv[1:]]          # the image's ENTRYPOINT is mip6

    d.launcher = launcher
    podman("rm", "-f", "--ignore", name)                   # left over by an interrupted run
    d.clear_state()
    state_dir.mkdir(parents=True, exist_ok=True)
    request.node._mip6_daemons = getattr(request.node, "_mip6_daemons", []) + [d]
    try:
        d.start(READY_TIMEOUT)
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    d.container = name
    yield d
    if d.alive():
        podman("stop", "-t", "5", name, check=False)
    d.stop()
    podman("rm", "-f", "--ignore", name, check=False)
    d.clear_state()


def test_ping_through_home_agent_in_container(testbed, container_daemon, mn):
    d = container_daemon
    inspect = podman("inspect", "--format", "{{.State.Running}} {{.HostConfig.Privileged}}", d.container)
    assert inspect.stdout.split() == ["true", "true"], inspect.stdout

    register_ok(mn, testbed, seq=1)
    binding = d.binding(testbed.HOA)
    assert binding is not None and binding["careOfAddress"] == testbed.COA1, \
        f"the host's `mip6 bindings list` does not see the container's binding: {d.bindings()}"

    received, seen = ping_through(testbed, mn)
    assert received == PINGS, f"{received}/{PINGS} echo replies reached the CN"
    assert seen["tunneled_requests"] >= PINGS, seen
    assert set(seen["inner_src"]) == {testbed.CN}

    # podman stop: SIGTERM to the daemon (PID 1 in the container), which exits 0.
    t0 = time.monotonic()
    podman("stop", "-t", "10", d.container, timeout=30)
    d.exit_code = d.proc.wait(10)      # `podman run` exits with the container's status
    print(f"podman stop: {time.monotonic() - t0:.2f} s, exit status {d.exit_code}")
    assert d.exit_code == 0, f"`mip6 ha` in the container exited {d.exit_code} on podman stop (SIGTERM)"
    assert podman("container", "exists", d.container, check=False).returncode == 1, "--rm left the container"
