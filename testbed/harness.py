"""Drivers for the things that run in the testbed: the home-agent daemon, the scapy mobile
node, and ping. Shared by Tests/e2e, scripts/demo and perf/; they raise HarnessError
(with the daemon's output where it helps) and never depend on pytest.
"""

from __future__ import annotations

import json
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .topology import REPO_ROOT, Testbed

PYTHON = "/usr/bin/python3"   # Debian's, with scapy; not whatever python3 is first on PATH
READY_LINE = "home agent ready"


class HarnessError(RuntimeError):
    pass


def wait_for(predicate, timeout: float, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy; returns that (or the last falsy value)."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def default_binary() -> Path:
    return REPO_ROOT / ".build" / "release" / "mip6"


class HomeAgent:
    """`mip6 ha` in the HA namespace, its output in `log_path`, and the CLI pointed at its pins.

    --bpffs is /sys/fs/bpf/mip6-<tag> as every testbed process sees it (the
    testbed's private bpffs); --state-dir is /run/mip6-<tag>.
    """

    def __init__(self, tb: Testbed, binary: Path, log_path: Path, extra_args: list[str] = (),
                 xdp_mode: str = "native", log_level: str = "debug"):
        self.tb, self.binary, self.log_path = tb, Path(binary), Path(log_path)
        self.bpffs = f"/sys/fs/bpf/mip6-{tb.tag}"
        self.bpffs_host = tb.BPFFS / f"mip6-{tb.tag}"      # the same directory, seen from the host
        self.state_dir = f"/run/mip6-{tb.tag}"
        self.argv = [str(self.binary), "ha", "--interface", tb.HA_IF, "--address", tb.HA,
                     "--home-prefix", tb.HOME_PREFIX, "--bpffs", self.bpffs, "--state-dir", self.state_dir,
                     "--xdp-mode", xdp_mode, "--log-level", log_level, *extra_args]
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self.ready_seconds: float | None = None
        self._log = None

    def start(self, timeout: float = 15.0) -> "HomeAgent":
        if not self.binary.is_file():
            raise HarnessError(f"{self.binary} not found: run `swift build -c release` in {REPO_ROOT}")
        self._log = open(self.log_path, "wb")
        self.proc = self.tb.popen("ha", self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        wait_for(lambda: READY_LINE in self.log_text() or self.proc.poll() is not None, timeout)
        if READY_LINE not in self.log_text():
            code = self.proc.poll()
            self.stop()
            raise HarnessError(f"`mip6 ha` did not log {READY_LINE!r} within {timeout:.0f} s "
                               f"(exit code {code}); its output:\n{self.log_text()}")
        self.ready_seconds = time.monotonic() - t0
        return self

    def clear_state(self) -> None:
        """Remove what a home agent leaves behind (pins, state dir, XDP, neighbour entries),
        so the next start has no bindings. Call when no daemon runs."""
        for path in (self.bpffs_host, Path(self.state_dir)):
            shutil.rmtree(path, ignore_errors=True)
        self.tb.run("ha", f"ip link set dev {self.tb.HA_IF} xdp off; ip -6 neigh flush proxy; true", check=False)
        self.tb.run("rtr", f"ip -6 neigh del {self.tb.HOA} dev {self.tb.HOME_BRIDGE}; true", check=False)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM (SIGKILL after `timeout`); returns the exit code."""
        if self.proc is None:
            return None
        if self.exit_code is None:
            self.exit_code = self.tb.stop(self.proc, signal.SIGTERM, timeout)
        if self._log:
            self._log.close()
        return self.exit_code

    # --- CLI ---------------------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.tb.run("ha", [str(self.binary), *args], check=check, timeout=20)

    def bindings(self) -> list[dict]:
        return json.loads(self.cli("bindings", "list", "--json", "--bpffs", self.bpffs).stdout)

    def binding(self, hoa: str) -> dict | None:
        return next((b for b in self.bindings() if b.get("homeAddress") == hoa), None)

    def show(self, hoa: str) -> subprocess.CompletedProcess:
        return self.cli("bindings", "show", hoa, "--json", "--bpffs", self.bpffs, check=False)

    def stats(self) -> dict:
        return json.loads(self.cli("stats", "--json", "--bpffs", self.bpffs, "--state-dir", self.state_dir).stdout)


class Responder:
    """`scapy_mn responder` in the MN namespace, started and READY; finish() returns its JSON."""

    def __init__(self, tb: Testbed, iface: str, coa: str, duration: float, ready_timeout: float = 10):
        self.tb, self.iface = tb, iface
        self.proc = tb.popen("mn", [PYTHON, "-m", "testbed.scapy_mn", "responder", "--iface", iface,
                                    "--coa", coa, "--ha", tb.HA, "--hoa", tb.HOA, "--duration", str(duration)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._stderr = ""
        deadline = time.monotonic() + ready_timeout
        while "READY" not in self._stderr:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                tb.stop(self.proc)
                raise HarnessError(f"responder on {iface} did not start: {self._stderr}{self.proc.stderr.read()}")
            if select.select([self.proc.stderr], [], [], left)[0]:
                self._stderr += self.proc.stderr.readline()

    def finish(self) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=10)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise HarnessError(f"responder on {self.iface} printed no JSON: {out!r} {self._stderr}{err}") from None


class MobileNode:
    """The scapy mobile node (testbed.scapy_mn) in the MN namespace."""

    def __init__(self, tb: Testbed, echo: bool = True):
        self.tb, self.echo = tb, echo

    def run(self, args: list[str], timeout: float) -> dict:
        cp = self.tb.run("mn", [PYTHON, "-m", "testbed.scapy_mn", *args], check=False, timeout=timeout)
        try:
            out = json.loads(cp.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise HarnessError(f"scapy_mn {args[0]} printed no JSON (exit {cp.returncode}): "
                               f"{cp.stdout}{cp.stderr}") from None
        if "error" in out:
            raise HarnessError(f"scapy_mn {args[0]} failed: {out['error']}\n{cp.stderr}")
        if self.echo:
            print(f"scapy_mn {' '.join(args)}\n  -> {json.dumps(out)}")
        return out

    def coa_of(self, iface: str) -> str:
        return {self.tb.MN_IF1: self.tb.COA1, self.tb.MN_IF2: self.tb.COA2}[iface]

    def register(self, seq: int, lifetime: int, iface: str = Testbed.MN_IF1, coa: str | None = None,
                 hoa: str | None = None, timeout: float = 3.0, extra: tuple[str, ...] = ()) -> dict:
        """Send a BU; returns the BA's fields, {"ba": None} on timeout, or {"be": ...} for --mh-type."""
        return self.run(["register", "--iface", iface, "--coa", coa or self.coa_of(iface), "--ha", self.tb.HA,
                         "--hoa", hoa or self.tb.HOA, "--seq", str(seq), "--lifetime", str(lifetime),
                         "--timeout", str(timeout), *extra], timeout=timeout + 15)

    def flood(self, count: int, iface: str = Testbed.MN_IF1) -> dict:
        return self.run(["flood", "--iface", iface, "--coa", self.coa_of(iface), "--ha", self.tb.HA,
                         "--count", str(count)], timeout=60)

    def responder(self, iface: str = Testbed.MN_IF1, duration: float = 10) -> Responder:
        return Responder(self.tb, iface, self.coa_of(iface), duration)


def ping(tb: Testbed, node: str, dst: str, count: int = 5, interval: float = 0.2,
         wait: float = 1.0, echo: bool = True) -> tuple[int, subprocess.CompletedProcess]:
    """`ping -6` from `node`; returns (replies received, the finished process)."""
    cp = tb.run(node, ["ping", "-6", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait), dst],
                check=False, timeout=count * (interval + wait) + 10)
    m = re.search(r"(\d+) received", cp.stdout)
    if echo:
        print(cp.stdout.rstrip())
    return (int(m.group(1)) if m else 0), cp
