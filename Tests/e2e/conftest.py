"""Fixtures for the end-to-end tests: one testbed per session, one home agent per test
(`daemon`), mobile-node daemons started by the test through `mobile_node`.

Run as root from the repository root:

    swift build -c release
    /usr/bin/python3 -m pytest Tests/e2e -v

Environment:
    MIP6_BIN       the daemon (default .build/release/mip6, relative to the repo root)
    MIP6_E2E_TAG   namespace prefix (default m6e2e; two runs need two tags)
    MIP6_ATTACH_MODE  --attach-mode for the home agent (default auto: TC on the testbed's veth)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from testbed import Testbed  # noqa: E402
from testbed.harness import (PYTHON, HarnessError, HomeAgent, MobileNode, MobileNodeDaemon,  # noqa: E402,F401
                             ping, wait_for)

TAG = os.environ.get("MIP6_E2E_TAG", "m6e2e")
ATTACH_MODE = os.environ.get("MIP6_ATTACH_MODE", "auto")
READY_TIMEOUT = 15.0
NOT_ROOT = "needs root: the e2e tests create network namespaces, veth pairs and XDP programs (run with sudo)"


def mip6_binary() -> Path:
    p = Path(os.environ.get("MIP6_BIN", ".build/release/mip6"))
    return p if p.is_absolute() else REPO_ROOT / p


# --- pytest hooks ------------------------------------------------------------
def pytest_configure(config):
    config.addinivalue_line("markers", "daemon_args(*args): extra command-line arguments for `mip6 ha`")
    config.addinivalue_line("markers", "lma_args(*args): extra command-line arguments for `mip6 lma` (test_lma.py)")


def pytest_report_header(config):
    lines = [f"mip6 e2e: binary {mip6_binary()}, tag {TAG!r}, attach mode {ATTACH_MODE}"]
    if os.geteuid() != 0:
        lines.append(f"mip6 e2e: SKIPPING ALL TESTS: {NOT_ROOT}")
    return lines


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=NOT_ROOT))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the output of the test's daemons (`mip6 ha`, `mip6 mn`) to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for d in getattr(item, "_mip6_daemons", []):
            rep.sections.append((f"{d.name} output ({d.log_path})", d.log_text()[-20000:] or "(empty)"))


# --- helpers -----------------------------------------------------------------
def flatten(d, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}: counters are looked up by name fragments."""
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = v
    return out


def counter_delta(before: dict, after: dict, pattern: str, exclude: str | None = None) -> dict:
    """Increase of every counter whose name matches `pattern` (case-insensitive), minus `exclude`."""
    rx, ex = re.compile(pattern, re.I), re.compile(exclude, re.I) if exclude else None
    a, b = flatten(after), flatten(before)
    return {k: a[k] - b.get(k, 0) for k in a if rx.search(k) and not (ex and ex.search(k))}


def ping_cn(tb: Testbed, dst: str | None = None, count: int = 5, interval: float = 0.2,
            wait: float = 1.0) -> tuple[int, subprocess.CompletedProcess]:
    """ping -6 from the correspondent (default: to the home address); (replies, process)."""
    return ping(tb, "cn", dst or tb.HOA, count, interval, wait)


# --- fixtures ----------------------------------------------------------------
@pytest.fixture(scope="session")
def testbed():
    if os.geteuid() != 0:
        pytest.skip(NOT_ROOT)
    tb = Testbed(TAG)
    tb.up()
    print(f"testbed {TAG!r} up in {tb.up_seconds:.2f} s", *tb.notes, sep="\n")
    yield tb
    tb.down()


@pytest.fixture(scope="session")
def mip6_bin() -> Path:
    p = mip6_binary()
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.fail(f"mip6 binary not found at {p}: build it first with `swift build -c release` "
                    f"in {REPO_ROOT} (or point MIP6_BIN at it)", pytrace=False)
    return p


@pytest.fixture
def mn(testbed) -> MobileNode:
    return MobileNode(testbed)


@pytest.fixture
def daemon(request, testbed, mip6_bin, tmp_path) -> HomeAgent:
    """A fresh `mip6 ha` (no pinned state) for one test; stopped with SIGTERM afterwards."""
    marker = request.node.get_closest_marker("daemon_args")
    extra = [str(a) for a in marker.args] if marker else []
    d = HomeAgent(testbed, mip6_bin, tmp_path / "mip6-ha.log", extra, attach_mode=ATTACH_MODE)
    d.clear_state()
    request.node._mip6_daemons = getattr(request.node, "_mip6_daemons", []) + [d]
    try:
        d.start(READY_TIMEOUT)
    except HarnessError as e:
        pytest.fail(str(e), pytrace=False)
    yield d
    d.stop()
    d.clear_state()


@pytest.fixture
def mobile_node(request, testbed, mip6_bin, tmp_path):
    """Starts `mip6 mn` daemons: mobile_node(interfaces=..., lifetime=..., extra=...) returns a
    started MobileNodeDaemon (no pinned state before it). Afterwards each gets SIGTERM and
    the MN's links are put back as the testbed made them (both foreign links up, mn-home down).

    Ask for it after `daemon`, so that the mobile node stops (and de-registers) first."""
    started: list[MobileNodeDaemon] = []

    def start(interfaces=(Testbed.MN_IF1, Testbed.MN_IF2), lifetime=None, extra=(),
              timeout=READY_TIMEOUT) -> MobileNodeDaemon:
        d = MobileNodeDaemon(testbed, mip6_bin, tmp_path / f"mip6-mn-{len(started)}.log",
                             interfaces, lifetime, [str(a) for a in extra])
        d.clear_state()
        started.append(d)
        request.node._mip6_daemons = getattr(request.node, "_mip6_daemons", []) + [d]
        try:
            d.start(timeout)
        except HarnessError as e:
            pytest.fail(str(e), pytrace=False)
        print(f"mip6 mn ready in {d.ready_seconds:.2f} s: {' '.join(d.argv[1:])}")
        return d

    yield start
    for d in reversed(started):
        d.stop()
    for d in started:
        d.clear_state()
    testbed.reset_mn()
