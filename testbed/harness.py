"""Drivers for the things that run in the testbed: the home-agent daemon, the scapy mobile
node, and ping. Shared by Tests/e2e, scripts/demo and perf/; they raise HarnessError
(with the daemon's output where it helps) and never depend on pytest.
"""

from __future__ import annotations

import json
import os
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


def bench_binary(mip6: str | Path) -> str:
    """`mip6-bench`, built beside `mip6` by the same `swift build` (benchmarks are not in `mip6`)."""
    return str(Path(mip6).with_name("mip6-bench"))


class _Daemon:
    """What both daemon drivers share: a process started in a namespace, its log file."""
    proc: subprocess.Popen | None
    exit_code: int | None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """`sig` (SIGTERM: `mip6 ha` drains and exits 0 leaving its data plane running;
        `mip6 mn` de-registers and detaches), SIGKILL after `timeout`. Returns the exit code."""
        if self.proc is None:
            return None
        if self.exit_code is None:
            self.exit_code = self.tb.stop(self.proc, sig, timeout)
        if self._log:
            self._log.close()
        return self.exit_code


class HomeAgent(_Daemon):
    """`mip6 ha` in the HA namespace, its output in `log_path`, and the CLI pointed at its pins.

    --bpffs is /sys/fs/bpf/mip6-<tag> as every testbed process sees it (the
    testbed's private bpffs); --state-dir is /run/mip6-<tag>.
    """

    # None: the daemon runs in the HA namespace (Testbed.popen). Otherwise a function of argv
    # that returns the command to run on the host instead, which puts `argv[1:]` in the HA
    # namespace itself, e.g. `podman run --network ns:... IMAGE` (Tests/e2e/test_container.py).
    # The CLI (bindings, stats) still runs `binary` in the namespace.
    launcher = None

    def __init__(self, tb: Testbed, binary: Path, log_path: Path, extra_args: list[str] = (),
                 attach_mode: str = "auto", log_level: str = "debug"):
        self.tb, self.binary, self.log_path = tb, Path(binary), Path(log_path)
        self.bpffs = f"/sys/fs/bpf/mip6-{tb.tag}"
        self.bpffs_host = tb.BPFFS / f"mip6-{tb.tag}"      # the same directory, seen from the host
        self.state_dir = f"/run/mip6-{tb.tag}"
        self.argv = [str(self.binary), "ha", "--interface", tb.HA_IF, "--address", tb.HA,
                     "--home-prefix", tb.HOME_PREFIX, "--bpffs", self.bpffs, "--state-dir", self.state_dir,
                     "--attach-mode", attach_mode, "--log-level", log_level, *extra_args]
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self.ready_seconds: float | None = None
        self._log = None
        self._log_start = 0
        self.name = "mip6 ha"

    def start(self, timeout: float = 15.0, append: bool = False) -> "HomeAgent":
        """Start the daemon and wait for its ready line. `append` keeps the log of an earlier
        run (a restart) and only looks for the ready line after it."""
        if self.launcher is None and not self.binary.is_file():
            raise HarnessError(f"{self.binary} not found: run `swift build -c release` in {REPO_ROOT}")
        self._log_start = len(self.log_text()) if append else 0
        self._log = open(self.log_path, "ab" if append else "wb")
        self.exit_code = None
        if self.launcher is not None:
            self.proc = subprocess.Popen(self.launcher(self.argv), cwd=REPO_ROOT, start_new_session=True,
                                         stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        else:
            self.proc = self.tb.popen("ha", self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        t0 = time.monotonic()
        wait_for(lambda: READY_LINE in self.log_text()[self._log_start:] or self.proc.poll() is not None, timeout)
        if READY_LINE not in self.log_text()[self._log_start:]:
            code = self.proc.poll()
            self.stop()
            raise HarnessError(f"`mip6 ha` did not log {READY_LINE!r} within {timeout:.0f} s "
                               f"(exit code {code}); its output:\n{self.log_text()[self._log_start:]}")
        self.ready_seconds = time.monotonic() - t0
        return self

    def kill(self) -> int | None:
        """SIGKILL: the daemon gets no chance to clean up (a crash, an OOM kill)."""
        return self.stop(sig=signal.SIGKILL)

    def attached_program(self) -> dict | None:
        """What `bpftool net` shows on the home-link interface: {"kind": "xdp"|"tc", "id": prog id,
        "tag": the kernel's hash of its instructions (tells one build from another)}."""
        cp = self.tb.run("ha", ["bpftool", "-j", "net", "show", "dev", self.tb.HA_IF], check=False)
        if cp.returncode != 0:
            return None
        info = (json.loads(cp.stdout or "[]") or [{}])[0]
        found = None
        for x in info.get("xdp", []):
            found = {"kind": "xdp", "id": x["id"], "mode": x.get("mode")}
            break
        for t in info.get("tc", []) if found is None else []:
            if t.get("kind") == "clsact/ingress":
                found = {"kind": "tc", "id": t["id"], "name": t.get("name")}
                break
        if found is not None:
            prog = self.tb.run("ha", ["bpftool", "-j", "prog", "show", "id", str(found["id"])], check=False)
            found["tag"] = json.loads(prog.stdout).get("tag") if prog.returncode == 0 else None
        return found

    def pinned_map_id(self, name: str = "mip6_bindings") -> int:
        cp = self.tb.run("ha", ["bpftool", "-j", "map", "show", "pinned", f"{self.bpffs}/{name}"])
        return json.loads(cp.stdout)["id"]

    def restart(self, clear: bool = True, timeout: float = 15.0) -> "HomeAgent":
        """Stop (SIGTERM), optionally forget every binding (clear_state), start again; one log."""
        self.stop()
        if clear:
            self.clear_state()
        return self.start(timeout, append=True)

    def clear_state(self) -> None:
        """Remove what a home agent leaves behind (pinned data plane, state dir, neighbour
        entries), so the next start has no bindings. Call when no daemon runs."""
        if self.binary.is_file():
            self.detach()
        for path in (self.bpffs_host, Path(self.state_dir)):
            shutil.rmtree(path, ignore_errors=True)
        self.tb.run("ha", f"ip link set dev {self.tb.HA_IF} xdp off; tc filter del dev {self.tb.HA_IF} ingress; "
                    "ip -6 neigh flush proxy; true", check=False)
        self.tb.run("rtr", f"ip -6 neigh del {self.tb.HOA} dev {self.tb.HOME_BRIDGE}; true", check=False)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


    # --- CLI ---------------------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.tb.run("ha", [str(self.binary), *args], check=check, timeout=20)

    def detach(self, check: bool = False) -> subprocess.CompletedProcess:
        """`mip6 dataplane detach`: the documented clean uninstall (the daemon leaves the data plane running)."""
        return self.cli("dataplane", "detach", "--bpffs", self.bpffs, "--state-dir", self.state_dir, check=check)

    def bindings(self) -> list[dict]:
        return json.loads(self.cli("bindings", "list", "--json", "--bpffs", self.bpffs).stdout)

    def binding(self, hoa: str) -> dict | None:
        return next((b for b in self.bindings() if b.get("homeAddress") == hoa), None)

    def show(self, hoa: str) -> subprocess.CompletedProcess:
        return self.cli("bindings", "show", hoa, "--json", "--bpffs", self.bpffs, check=False)

    def stats(self) -> dict:
        return json.loads(self.cli("stats", "--json", "--bpffs", self.bpffs, "--state-dir", self.state_dir).stdout)

    def sighup(self) -> None:
        """SIGHUP the daemon (re-reads --auth-keys). popen() exec's the daemon itself, so the
        process we started is `mip6 ha`."""
        if not self.alive():
            raise HarnessError(f"`mip6 ha` is not running (exit code {self.proc.poll() if self.proc else None})")
        self.proc.send_signal(signal.SIGHUP)

    def mark(self) -> int:
        """A position in the log; log_since(mark) is what came after."""
        return len(self.log_text())

    def log_since(self, mark: int) -> str:
        return self.log_text()[mark:]

    def wait_log(self, fragment: str, since: int = 0, timeout: float = 5.0) -> str | None:
        """The first log line after `since` containing `fragment`, waiting up to `timeout`."""
        def find():
            return next((l for l in self.log_since(since).splitlines() if fragment in l), None)
        return wait_for(find, timeout)


class LocalMobilityAnchor(_Daemon):
    """`mip6 lma` (PMIPv6, RFC 5213) in the HA namespace with the home agent's address and a
    policy file, its output in `log_path`, the CLI pointed at its state. --bpffs is
    /sys/fs/bpf/mip6-lma-<tag> (the testbed's private bpffs), --state-dir /run/mip6-lma-<tag>.
    Shared by Tests/e2e/test_lma.py and perf/pmip_wire.py."""

    READY = "local mobility anchor ready"

    def __init__(self, tb: Testbed, binary: Path, log_path: Path, policy_path: Path, extra_args: list[str] = (),
                 log_level: str = "debug", address: str | None = None):
        self.tb, self.binary, self.log_path, self.policy_path = tb, Path(binary), Path(log_path), Path(policy_path)
        self.bpffs = f"/sys/fs/bpf/mip6-lma-{tb.tag}"
        self.bpffs_host = tb.BPFFS / f"mip6-lma-{tb.tag}"
        self.state_dir = f"/run/mip6-lma-{tb.tag}"
        self.argv = [str(self.binary), "lma", "--interface", tb.HA_IF, "--address", address or tb.HA, "--policy", str(self.policy_path),
                     "--bpffs", self.bpffs, "--state-dir", self.state_dir, "--log-level", log_level, *extra_args]
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self._log = None
        self.name = "mip6 lma"

    def start(self, timeout: float = 15.0, keep_pins: bool = False) -> "LocalMobilityAnchor":
        """Start with no pins of an earlier run (unless `keep_pins`: a restart) and wait for the ready line."""
        if not self.binary.is_file():
            raise HarnessError(f"{self.binary} not found: run `swift build -c release` in {REPO_ROOT}")
        if not keep_pins:
            shutil.rmtree(self.bpffs_host, ignore_errors=True)
        since = len(self.log_text()) if keep_pins else 0
        self._log = open(self.log_path, "ab" if keep_pins else "wb")
        self.exit_code = None
        self.proc = self.tb.popen("ha", self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(lambda: self.READY in self.log_text()[since:] or self.proc.poll() is not None, timeout)
        if self.READY not in self.log_text()[since:]:
            code = self.proc.poll()
            self.stop()
            raise HarnessError(f"`mip6 lma` did not log {self.READY!r} within {timeout:.0f} s (exit code {code}); "
                               f"its output:\n{self.log_text()[-3000:]}")
        return self

    def clear_state(self) -> None:
        """Remove the pins and the state file (call when no daemon runs; it removes its filters itself)."""
        for path in (self.bpffs_host, Path(self.state_dir)):
            shutil.rmtree(path, ignore_errors=True)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cli(self, *args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
        return self.tb.run("ha", [str(self.binary), "lma", *args, "--state-dir", self.state_dir, "--bpffs", self.bpffs],
                           check=check, timeout=timeout)

    def bindings(self) -> dict:
        return json.loads(self.cli("bindings", "--json").stdout)

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json").stdout)


def write_key_file(path: Path, lines: list[str] | str, mode: int = 0o600) -> Path:
    """Write a key file (`--auth-keys` lines, or the MN's one hex line) with `mode`, atomically
    (a SIGHUP never sees half a file)."""
    path = Path(path)
    text = lines if isinstance(lines, str) else "".join(l + "\n" for l in lines)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


MN_READY_LINE = "mobile node ready"


class MobileNodeDaemon(_Daemon):
    """`mip6 mn` in the MN namespace, run like HomeAgent: output in `log_path`, pins under
    /sys/fs/bpf/mip6-mn-<tag> (the testbed's bpffs), state in /run/mip6-mn-<tag>.

    `interfaces` in order of preference; `lifetime` None leaves the daemon's default (600 s).
    """

    def __init__(self, tb: Testbed, binary: Path, log_path: Path,
                 interfaces: tuple[str, ...] | list[str] = (Testbed.MN_IF1, Testbed.MN_IF2),
                 lifetime: int | None = None, extra_args: list[str] = (), log_level: str = "debug"):
        self.tb, self.binary, self.log_path = tb, Path(binary), Path(log_path)
        self.interfaces = list(interfaces)
        self.bpffs = f"/sys/fs/bpf/mip6-mn-{tb.tag}"
        self.bpffs_host = tb.BPFFS / f"mip6-mn-{tb.tag}"
        self.state_dir = f"/run/mip6-mn-{tb.tag}"
        self.argv = [str(self.binary), "mn", "--home-address", tb.HOA, "--home-agent", tb.HA,
                     *[a for i in self.interfaces for a in ("--interface", i)],
                     *(["--lifetime", str(lifetime)] if lifetime is not None else []),
                     "--bpffs", self.bpffs, "--state-dir", self.state_dir, "--log-level", log_level,
                     *extra_args]
        self.name = "mip6 mn"
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self.ready_seconds: float | None = None
        self.started_at: float | None = None
        self._log = None

    # --- process -------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "MobileNodeDaemon":
        if not self.binary.is_file():
            raise HarnessError(f"{self.binary} not found: run `swift build -c release` in {REPO_ROOT}")
        self._log = open(self.log_path, "wb")
        self.started_at = time.monotonic()
        self.proc = self.tb.popen("mn", self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        wait_for(lambda: MN_READY_LINE in self.log_text() or self.proc.poll() is not None, timeout)
        if MN_READY_LINE not in self.log_text():
            code = self.proc.poll()
            self.stop()
            raise HarnessError(f"`mip6 mn` did not log {MN_READY_LINE!r} within {timeout:.0f} s "
                               f"(exit code {code}); argv: {' '.join(self.argv)}\nits output:\n{self.log_text()}")
        self.ready_seconds = time.monotonic() - self.started_at
        return self


    def clear_state(self) -> None:
        """Remove what a mobile node leaves behind (pins, state dir, TC programs, the home
        address on lo). Call when no daemon runs."""
        for path in (self.bpffs_host, Path(self.state_dir)):
            shutil.rmtree(path, ignore_errors=True)
        ifaces = (self.tb.MN_IF1, self.tb.MN_IF2, self.tb.MN_HOME_IF)
        self.tb.run("mn", "; ".join(f"tc qdisc del dev {i} clsact 2>/dev/null" for i in ifaces)
                    + f"; ip -6 addr del {self.tb.HOA}/128 dev lo 2>/dev/null; true", check=False)

    # --- output --------------------------------------------------------------
    def log_text(self, since: int = 0) -> str:
        try:
            return self.log_path.read_text(errors="replace")[since:]
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        """A position in the log; log_text(since=mark) is what came after."""
        return len(self.log_text())

    def log_lines(self, *fragments: str, since: int = 0) -> list[str]:
        """Log lines containing every fragment."""
        return [l for l in self.log_text(since).splitlines() if all(f in l for f in fragments)]

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    # --- status --------------------------------------------------------------
    def status(self, check: bool = True) -> dict | None:
        """`mip6 mn status --json`; None (check=False) when it fails."""
        cp = self.tb.run("mn", [str(self.binary), "mn", "status", "--json", "--state-dir", self.state_dir,
                                "--bpffs", self.bpffs], check=False, timeout=20)
        if cp.returncode == 0:
            try:
                return json.loads(cp.stdout)
            except json.JSONDecodeError:
                if check:
                    raise HarnessError(f"`mip6 mn status --json` printed no JSON: {cp.stdout!r} {cp.stderr}")
                return None
        if check:
            raise HarnessError(f"`mip6 mn status --json` exited {cp.returncode}: {cp.stderr.strip()}"
                               f"\n--- mip6 mn log (tail)\n{self.log_tail()}")
        return None

    def status_text(self) -> str:
        return self.tb.run("mn", [str(self.binary), "mn", "status", "--state-dir", self.state_dir,
                                  "--bpffs", self.bpffs], check=False).stdout.rstrip()

    def wait_status(self, predicate, timeout: float, what: str, interval: float = 0.05) -> dict:
        """Poll the status until `predicate(status)`; HarnessError (last status, log tail) if not."""
        last: dict | None = None

        def check():
            nonlocal last
            last = self.status(check=False)
            try:
                return last is not None and predicate(last)
            except (KeyError, TypeError):      # a field missing or null: not there yet
                return False

        if not wait_for(check, timeout, interval):
            code = self.proc.poll() if self.proc else None
            raise HarnessError(f"mobile node not {what} within {timeout:.1f} s"
                               f"{f' (daemon exited {code})' if code is not None else ''}; last status:\n"
                               f"{json.dumps(last, indent=1)}\n--- mip6 mn log (tail)\n{self.log_tail()}")
        return last

    def wait_registered(self, coa: str, timeout: float = 10.0) -> dict:
        """Until state is "registered" with `coa` as care-of address and tunnel end point."""
        return self.wait_status(lambda s: s.get("state") == "registered" and s.get("careOfAddress") == coa
                                and s.get("tunnelCareOf") == coa, timeout, f"registered from {coa}")

    def wait_state(self, state: str, timeout: float = 10.0) -> dict:
        return self.wait_status(lambda s: s.get("state") == state, timeout, f"in state {state!r}")


def counter(status: dict, name: str) -> int:
    """A counter of `mip6 mn status --json` ("counters.busSent", "dataplane.decap"), 0 if absent."""
    section, _, key = name.partition(".")
    v = (status.get(section) or {}).get(key)
    return int(v) if isinstance(v, (int, float)) else 0


# --- moves of the mobile node (shared by the tests, the demo and perf/handover.py) --------
def move_break_before_make(tb: Testbed, mn: MobileNodeDaemon, old_if: str, new_coa: str,
                           timeout: float = 10.0) -> dict:
    """Take the care-of link `old_if` down (another link is already up): the daemon must
    register `new_coa` at once. Returns {"t_down": monotonic time of the link going down,
    "seconds": until `mip6 mn status` showed the registration, "status": it}."""
    t0 = time.monotonic()
    tb.set_mn_link(old_if, False)
    st = mn.wait_registered(new_coa, timeout)
    return {"t_down": t0, "seconds": time.monotonic() - t0, "status": st}


def move_make_before_break(tb: Testbed, mn: MobileNodeDaemon, new_if: str, new_coa: str, old_if: str,
                           timeout: float = 10.0, overlap: float = 0.3) -> dict:
    """Bring the more preferred link `new_if` up: the daemon must move to `new_coa` while
    `old_if` still works; `overlap` s after the registration, `old_if` goes down.
    Returns {"seconds": link up -> registration seen in the status, "status": it}."""
    t0 = time.monotonic()
    tb.set_mn_link(new_if, True)
    st = mn.wait_registered(new_coa, timeout)
    t1 = time.monotonic()
    time.sleep(overlap)
    tb.set_mn_link(old_if, False)
    return {"t_up": t0, "seconds": t1 - t0, "status": st}


def send_forged_ba(tb: Testbed, coa: str, sequence: int, status: int = 0, lifetime: int = 60,
                   echo: bool = True) -> dict:
    """A Binding Acknowledgement built by scapy (testbed.scapy_mn send-ba) and sent from the
    HA namespace, with the home agent's address as source, to `coa` (Type 2 RH: the HoA)."""
    cp = tb.run("ha", [PYTHON, "-m", "testbed.scapy_mn", "send-ba", "--iface", tb.HA_IF, "--coa", coa,
                       "--ha", tb.HA, "--hoa", tb.HOA, "--seq", str(sequence), "--status", str(status),
                       "--lifetime", str(lifetime)], check=False, timeout=30)
    try:
        out = json.loads(cp.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise HarnessError(f"scapy_mn send-ba printed no JSON (exit {cp.returncode}): {cp.stdout}{cp.stderr}") from None
    if "error" in out:
        raise HarnessError(f"scapy_mn send-ba failed: {out['error']}\n{cp.stderr}")
    if echo:
        print(f"forged BA from {tb.HA} to {coa}: {json.dumps(out)}")
    return out


class Iperf3Error(HarnessError):
    pass


def iperf3(tb: Testbed, server_node: str, server_addr: str, client_node: str, *, seconds: float = 2,
           reverse: bool = False, udp_rate: str | None = None, udp_length: int = 1200,
           client_bind: str | None = None, port: int = 5201, echo: bool = True) -> dict:
    """One iperf3 run: a one-off server on `server_addr` in `server_node`, the client in
    `client_node` (bound to `client_bind` if given). The client sends; `reverse` makes the
    server send. `udp_rate` ("500M") makes it UDP with `udp_length`-byte datagrams.
    Returns {"mbps": receiver's rate, "sender_mbps", "retransmits" (TCP), "lost_percent" (UDP), ...}."""
    server = tb.popen(server_node, ["iperf3", "-s", "-1", "-B", server_addr, "-p", str(port)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The server listens within a few ms; the client retries its connection for a moment.
        wait_for(lambda: str(port) in tb.run(server_node, ["ss", "-Hltn", f"sport = :{port}"], check=False).stdout, 3)
        argv = ["iperf3", "-c", server_addr, "-p", str(port), "-t", str(seconds), "-J", "--connect-timeout", "3000"]
        if client_bind:
            argv += ["-B", client_bind]
        if reverse:
            argv.append("-R")
        if udp_rate:
            argv += ["-u", "-b", udp_rate, "-l", str(udp_length)]
        cp = tb.run(client_node, argv, check=False, timeout=seconds + 20)
    finally:
        tb.stop(server, timeout=3)
    try:
        out = json.loads(cp.stdout)
    except json.JSONDecodeError:
        raise Iperf3Error(f"iperf3 printed no JSON (exit {cp.returncode}): {cp.stdout[-2000:]}{cp.stderr}") from None
    if "error" in out:
        raise Iperf3Error(f"iperf3 {' '.join(argv)}: {out['error']}")
    end = out["end"]
    if udp_rate:
        s = end.get("sum_received") or end["sum"]
        sent = end.get("sum_sent") or end["sum"]
        mbps = (s["bits_per_second"] if "sum_received" in end
                else s["bits_per_second"] * (1 - s.get("lost_percent", 0) / 100))
        res = {"proto": "udp", "mbps": mbps / 1e6, "sender_mbps": sent["bits_per_second"] / 1e6,
               "lost_percent": s.get("lost_percent"), "jitter_ms": s.get("jitter_ms")}
    else:
        res = {"proto": "tcp", "mbps": end["sum_received"]["bits_per_second"] / 1e6,
               "sender_mbps": end["sum_sent"]["bits_per_second"] / 1e6,
               "retransmits": end["sum_sent"].get("retransmits")}
    res.update(seconds=seconds, reverse=reverse, server=f"{server_node} {server_addr}", client=client_node)
    if echo:
        direction = f"{server_node} -> {client_node}" if reverse else f"{client_node} -> {server_node}"
        extra = (f", {res['retransmits']} retransmits" if res["proto"] == "tcp"
                 else f", {res['lost_percent']:.2f}% lost")
        print(f"iperf3 {res['proto'].upper()} {direction} ({server_addr}): {res['mbps']:.0f} Mbit/s{extra}")
    return res


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
    """The scapy mobile node (testbed.scapy_mn) in the MN namespace (or in `node`, e.g. the
    attacker "atk": then pass `coa` to register(), coa_of() only knows the MN's links)."""

    def __init__(self, tb: Testbed, echo: bool = True, node: str = "mn"):
        self.tb, self.echo, self.node = tb, echo, node

    def run(self, args: list[str], timeout: float) -> dict:
        cp = self.tb.run(self.node, [PYTHON, "-m", "testbed.scapy_mn", *args], check=False, timeout=timeout)
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
        return {self.tb.MN_IF1: self.tb.COA1, self.tb.MN_IF2: self.tb.COA2, self.tb.ATK_IF: self.tb.ATK}[iface]

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

    def send_raw(self, packets: list[bytes], iface: str, coa: str | None = None, timeout: float = 1.0,
                 gw: str | None = None) -> dict:
        """Send IPv6 packets byte for byte (scapy_mn send-raw); returns what the HA answered to `coa`."""
        args = ["send-raw", "--iface", iface, "--coa", coa or self.coa_of(iface), "--ha", self.tb.HA,
                "--timeout", str(timeout), *(["--gw", gw] if gw else [])]
        for p in packets:
            args += ["--hex", p.hex()]
        return self.run(args, timeout=timeout + 15)

    def bu_flood(self, count: int, iface: str, coa: str | None = None, sources: int = 1, mode: str = "wrongkey",
                 extra: tuple[str, ...] = (), gw: str | None = None, timeout: float = 90) -> dict:
        """scapy_mn bu-flood: `count` BUs for the home address from `sources` source /64s."""
        return self.run(["bu-flood", "--iface", iface, "--coa", coa or self.coa_of(iface), "--ha", self.tb.HA,
                         "--hoa", self.tb.HOA, "--count", str(count), "--sources", str(sources), "--mode", mode,
                         *(["--gw", gw] if gw else []), *extra], timeout=timeout)


def ping(tb: Testbed, node: str, dst: str, count: int = 5, interval: float = 0.2,
         wait: float = 1.0, echo: bool = True, source: str | None = None,
         size: int | None = None) -> tuple[int, subprocess.CompletedProcess]:
    """`ping -6` from `node` (from address `source` if given, with `size` bytes of ICMPv6 data:
    the packet is 48 more); returns (replies received, the finished process)."""
    cp = tb.run(node, ["ping", "-6", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait),
                       *(["-I", source] if source else []), *(["-s", str(size)] if size is not None else []), dst],
                check=False, timeout=count * (interval + wait) + 10)
    m = re.search(r"(\d+) received", cp.stdout)
    if echo:
        print(cp.stdout.rstrip())
    return (int(m.group(1)) if m else 0), cp


class UdpStream:
    """testbed.stream: a receiver in `dst_node` bound to `dst`, a sender in `src_node` at
    `rate` datagrams/s. start() returns once both run; stop() ends the sender, lets the
    last datagrams arrive, ends the receiver and returns testbed.stream.analyse()."""

    def __init__(self, tb: Testbed, dst: str = Testbed.HOA, rate: float = 1000, port: int = 5555,
                 src_node: str = "cn", dst_node: str = "mn", size: int = 64, max_seconds: float = 120,
                 src: str | None = None):
        self.tb, self.dst, self.rate, self.port, self.src = tb, dst, rate, port, src
        self.src_node, self.dst_node, self.size, self.max_seconds = src_node, dst_node, size, max_seconds
        self.run_id = int(time.monotonic_ns() & 0x7FFFFFFF)
        self.receiver: subprocess.Popen | None = None
        self.sender: subprocess.Popen | None = None
        self.events: dict[str, int] = {}

    def _start(self, node: str, args: list[str], ready: str) -> subprocess.Popen:
        p = self.tb.popen(node, [PYTHON, "-m", "testbed.stream", *args, "--port", str(self.port),
                                 "--run-id", str(self.run_id), "--duration", str(self.max_seconds)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = ""
        if select.select([p.stderr], [], [], 10)[0]:
            line = p.stderr.readline()
        if ready not in line:
            self.tb.stop(p)
            raise HarnessError(f"testbed.stream {args[0]} in {node} did not start: {line}{p.stderr.read()}")
        return p

    def start(self) -> "UdpStream":
        self.receiver = self._start(self.dst_node, ["recv", "--bind", self.dst], "READY")
        try:
            self.sender = self._start(self.src_node, ["send", "--dst", self.dst, "--rate", str(self.rate),
                                                      "--size", str(self.size),
                                                      *(["--src", self.src] if self.src else [])], "SENDING")
        except HarnessError:
            self.tb.stop(self.receiver)
            raise
        return self

    def mark(self, name: str) -> None:
        """Note the time of an event (e.g. "link_down"); analyse() reports it against the outage."""
        self.events[name] = time.monotonic_ns()

    @staticmethod
    def _result(p: subprocess.Popen, what: str) -> dict:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=15)
        try:
            res = json.loads(out.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            raise HarnessError(f"testbed.stream {what} printed no JSON: {out[-500:]!r} {err}") from None
        if "error" in res:
            raise HarnessError(f"testbed.stream {what}: {res['error']}")
        return res

    def stop(self, drain: float = 0.2) -> dict:
        from .stream import analyse
        try:
            sent = self._result(self.sender, "send")
            time.sleep(drain)
        finally:
            received = self._result(self.receiver, "recv")
        return analyse(sent, received, self.events)

    def abort(self) -> None:
        for p in (self.sender, self.receiver):
            if p is not None:
                self.tb.stop(p, timeout=2)


def _wait_listening(tb: Testbed, proc: subprocess.Popen, argv: list[str], timeout: float) -> None:
    """Returns once tcpdump says it is listening; stops it and raises otherwise. Unbuffered
    reads of stderr: a buffered readline would hide lines from select."""
    err = b""
    deadline = time.monotonic() + timeout
    while b"listening" not in err:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stderr], [], [], left)[0]:
            break
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk:
            break
        err += chunk
    if b"listening" not in err:
        tb.stop(proc)
        raise HarnessError(f"tcpdump {' '.join(argv)} did not start: {err.decode(errors='replace')}")


class Capture:
    """tcpdump in `node` on `iface` (text, one line per packet, -v): start() returns once it
    listens, stop() returns the lines. For checks like "did the MN send an unsolicited NA".
    --immediate-mode: without it libpcap's TPACKET_V3 ring hands packets over a block at a
    time (1 s timeout), and the SIGINT of stop() throws away a block not yet handed over, so
    a packet sent just before stop() was missed about one run in six."""

    def __init__(self, tb: Testbed, node: str, iface: str, bpf_filter: str, verbose: bool = True):
        self.tb = tb
        self.argv = ["tcpdump", "-i", iface, "-n", "-l", "--immediate-mode", "-tt", "-e", *(["-v"] if verbose else []), bpf_filter]
        self.node = node
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 5) -> "Capture":
        self.proc = self.tb.popen(self.node, self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_listening(self.tb, self.proc, self.argv, timeout)
        return self

    def stop(self) -> list[str]:
        time.sleep(0.05)          # what is on the wire now reaches tcpdump
        self.tb.stop(self.proc, signal.SIGINT, timeout=3)
        out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
        # With -v a packet may take two lines (the second indented): join them.
        lines: list[str] = []
        for l in out.splitlines():
            if l.startswith((" ", "\t")) and lines:
                lines[-1] += " " + l.strip()
            elif l.strip():
                lines.append(l.strip())
        return lines


class PcapCapture:
    """tcpdump -w in `node` on `iface`: start() returns once it listens, stop() returns the
    captured IPv6 packets (bytes from the IPv6 header on, Ethernet stripped) in order. For
    packets to resend byte for byte (a replay)."""

    def __init__(self, tb: Testbed, node: str, iface: str, bpf_filter: str, path: Path):
        self.tb, self.node, self.path = tb, node, Path(path)
        self.argv = ["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-s", "0", "-w", str(self.path), bpf_filter]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 5) -> "PcapCapture":
        self.proc = self.tb.popen(self.node, self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_listening(self.tb, self.proc, self.argv, timeout)
        return self

    def packets(self) -> list[bytes]:
        """What has been captured so far (the capture goes on)."""
        return read_pcap_ipv6(self.path)

    def stop(self) -> list[bytes]:
        time.sleep(0.05)
        if self.proc is not None:
            self.tb.stop(self.proc, signal.SIGINT, timeout=3)
        return read_pcap_ipv6(self.path)


def read_pcap_ipv6(path: Path) -> list[bytes]:
    """The IPv6 packets of a classic pcap file with Ethernet framing (tcpdump -w)."""
    import struct
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    if len(data) < 24:
        return []
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
              b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if endian is None:
        raise HarnessError(f"{path}: not a classic pcap file (magic {magic.hex()})")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise HarnessError(f"{path}: link type {linktype}, expected Ethernet (1)")
    out, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(frame) >= 14 and frame[12:14] == b"\x86\xdd":
            out.append(frame[14:])
    return out


class Setup:
    """The whole testbed with both daemons, for scripts (perf/): builds the topology, starts
    `mip6 ha` and `mip6 mn` (care-of links in `interfaces` order), waits for the registration;
    on exit (also on an exception, SIGTERM or Ctrl-C) stops both and removes everything.

        with Setup("m6perf", binary) as s:
            s.tb, s.ha, s.mn ...
    """

    def __init__(self, tag: str, binary: Path, logdir: Path,
                 interfaces: tuple[str, ...] = (Testbed.MN_IF1, Testbed.MN_IF2), lifetime: int | None = None,
                 log_level: str = "info", attach_mode: str = "auto"):
        # Native XDP on veth needs the peer's XDP_PASS program and software checksums (see
        # topology.py); TC keeps the kernel's offloads (GSO/TSO), so it gets them on.
        xdp = attach_mode.startswith("xdp")
        self.tb = Testbed(tag, xdp_pass_peer=xdp, tx_offload_off=xdp)
        self.ha = HomeAgent(self.tb, binary, Path(logdir) / f"mip6-{tag}-ha.log", log_level=log_level,
                            attach_mode=attach_mode)
        self.mn = MobileNodeDaemon(self.tb, binary, Path(logdir) / f"mip6-{tag}-mn.log", interfaces=interfaces,
                                   lifetime=lifetime, log_level=log_level)
        self.registered: dict | None = None

    def __enter__(self) -> "Setup":
        self.tb.__enter__()
        try:
            self.ha.start()
            self.mn.start()
            coa = self.tb.MN_FOREIGN_LINKS[self.mn.interfaces[0]][0]
            self.registered = self.mn.wait_registered(coa, timeout=10)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.mn.stop()
            self.ha.stop()
            if self.tb.exists():
                self.mn.clear_state()
                self.ha.clear_state()
        finally:
            self.tb.__exit__(None, None, None)


# --- the daemons' HTTP endpoints (--http-listen) ---------------------------------------------
_FETCH = r"""
import json, sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5)
    print(json.dumps({"status": r.status, "type": r.headers.get("Content-Type"), "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "type": e.headers.get("Content-Type"), "body": e.read().decode()}))
"""


def http_get(tb: Testbed, node: str, url: str) -> dict:
    """GET `url` from inside `node` (the endpoints listen on their namespace's loopback):
    {"status", "type", "body"}, error statuses included."""
    return json.loads(tb.run(node, [PYTHON, "-c", _FETCH, url], timeout=15).stdout)


def metric_samples(text: str, name: str) -> dict[str, float]:
    """{label string: value} of every sample of metric `name` in the exposition text."""
    out = {}
    for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", text, re.M):
        out[m.group(1) or ""] = float(m.group(2))
    return out


def metric_labelled(text: str, name: str, **labels: str) -> float:
    """The one sample of `name` carrying these labels (0 when there is none)."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    hits = [v for k, v in metric_samples(text, name).items() if all(w in k for w in want)]
    assert len(hits) <= 1, (name, labels, hits)
    return hits[0] if hits else 0.0
