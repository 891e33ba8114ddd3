"""Restarts that lose nothing (issue 6): the data plane stays pinned while `mip6 ha` is
down, and the next start adopts it.

A constant ping stream from the correspondent to the home address of a registered
`mip6 mn` runs across a `kill -9` + start, across a SIGTERM + start (which loads and
swaps in a new program), and across a SIGTERM + start of a different build of the program
(`--program-object`, an upgrade of the data plane): not one reply may be missing, the binding
keeps its remaining lifetime, the mobile node sends no BU, and a BU after the restart is
judged against the sequence number accepted before it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import READY_TIMEOUT, REPO_ROOT, HarnessError, HomeAgent, ping, ping_cn
from test_home_agent import derived_link_local, router_resolves
from test_mobile_node import assert_binding, counter
from testbed.harness import Capture

SEQUENCE_OUT_OF_WINDOW = 135
PING_INTERVAL = 0.01          # 100 echo requests per second
DOWN_SECONDS = 2.0            # how long the control plane stays down


class PingStream:
    """`ping -i 0.01 -c N` from the correspondent to the home address, in the background."""

    def __init__(self, tb, seconds: float):
        self.count = int(seconds / PING_INTERVAL)
        self.proc = tb.popen("cn", ["ping", "-6", "-n", "-i", str(PING_INTERVAL), "-W", "2", "-c", str(self.count), tb.HOA],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def result(self) -> tuple[int, int, str]:
        out, _ = self.proc.communicate(timeout=self.count * PING_INTERVAL + 60)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        assert m, f"ping printed no summary: {out[-500:]}"
        return int(m.group(1)), int(m.group(2)), out


def lost_sequences(out: str, count: int) -> list[int]:
    seen = {int(m) for m in re.findall(r"icmp_seq=(\d+)", out)}
    return [s for s in range(1, count + 1) if s not in seen]


def restart_under_ping(tb, daemon, mn_daemon, stop, extra_args: list[str] = ()) -> dict:
    """Registered MN, ping stream, `stop(daemon)`, DOWN_SECONDS, start (with `extra_args`
    added to the daemon's command line); returns what was seen."""
    st0 = mn_daemon.wait_registered(tb.COA1, timeout=8)
    before = assert_binding(daemon, tb.COA1)
    prog_before, map_before = daemon.attached_program(), daemon.pinned_map_id()
    assert prog_before, "no program on the home link while the daemon runs"

    stream = PingStream(tb, seconds=DOWN_SECONDS + 4)
    time.sleep(1.0)
    t_stop = time.monotonic()
    code = stop(daemon)
    prog_down = daemon.attached_program()
    time.sleep(DOWN_SECONDS)
    daemon.argv += list(extra_args)
    daemon.start(READY_TIMEOUT, append=True)
    t_back = time.monotonic() - t_stop
    sent, received, out = stream.result()

    after = assert_binding(daemon, tb.COA1)
    st1 = mn_daemon.status()
    seen = {
        "exit_code": code, "sent": sent, "received": received, "lost": lost_sequences(out, sent),
        "control_plane_down_s": round(t_back, 2), "binding_before": before, "binding_after": after,
        "program_before": prog_before, "program_while_down": prog_down, "program_after": daemon.attached_program(),
        "bindings_map_before": map_before, "bindings_map_after": daemon.pinned_map_id(),
        "mn_bus_before": counter(st0, "counters.busSent"), "mn_bus_after": counter(st1, "counters.busSent"),
        "mn_sequence": st0["sequence"],
    }
    print(json.dumps(seen, indent=1))
    return seen


def assert_nothing_lost(seen: dict, tb, daemon, mn):
    assert seen["program_while_down"] == seen["program_before"], \
        f"the program left the home link while the daemon was down: {seen['program_while_down']}"
    assert seen["received"] == seen["sent"], \
        f"{seen['sent'] - seen['received']} of {seen['sent']} pings lost across the restart: icmp_seq {seen['lost'][:20]}"
    assert seen["bindings_map_after"] == seen["bindings_map_before"], "the restarted daemon made a new binding map"
    b0, b1 = seen["binding_before"], seen["binding_after"]
    assert b1["sequence"] == b0["sequence"] and b1["careOfAddress"] == b0["careOfAddress"]
    assert b1["lifetime"] == b0["lifetime"], "the adopted binding's granted lifetime changed"
    assert 0 < b1["remaining"] < b0["remaining"], f"remaining lifetime not carried over: {b0['remaining']} -> {b1['remaining']}"
    assert b0["remaining"] - b1["remaining"] <= seen["control_plane_down_s"] + 8
    assert seen["mn_bus_after"] == seen["mn_bus_before"], \
        f"the mobile node sent {seen['mn_bus_after'] - seen['mn_bus_before']} BU(s): it had to register again"
    # A BU after the restart is judged against the sequence accepted before it (RFC 6275 §9.5.1).
    ba = mn.register(seq=seen["mn_sequence"], lifetime=60)
    assert ba.get("status") == SEQUENCE_OUT_OF_WINDOW, f"a replayed sequence number was not refused with 135: {ba}"
    assert ba["sequence"] == seen["mn_sequence"], "the 135 must carry the last accepted sequence number"
    assert daemon.binding(tb.HOA)["sequence"] == b0["sequence"]


def test_kill_9_and_restart_lose_no_packet(testbed, daemon, mobile_node, mn):
    mn_daemon = mobile_node(lifetime=120)
    seen = restart_under_ping(testbed, daemon, mn_daemon, lambda d: d.kill())
    assert seen["exit_code"] == -9, f"`mip6 ha` was not killed by SIGKILL: {seen['exit_code']}"
    assert_nothing_lost(seen, testbed, daemon, mn)
    assert "adopting the pinned data plane" in daemon.log_text()


def test_sigterm_then_new_program_loses_no_packet(testbed, daemon, mobile_node, mn):
    """SIGTERM drains and exits 0; the next start loads its own program and swaps it in
    atomically (bpf_link_update for XDP, BPF_TC_F_REPLACE for TC), keeping the maps."""
    mn_daemon = mobile_node(lifetime=120)
    seen = restart_under_ping(testbed, daemon, mn_daemon, lambda d: d.stop())
    assert seen["exit_code"] == 0, f"`mip6 ha` exited {seen['exit_code']} on SIGTERM"
    assert_nothing_lost(seen, testbed, daemon, mn)
    assert seen["program_after"]["kind"] == seen["program_before"]["kind"]
    assert seen["program_after"]["id"] != seen["program_before"]["id"], \
        "the restarted daemon did not replace the program with the one it loaded"


def build_program_object(out: Path, source: Path = REPO_ROOT / "bpf" / "mip6_ha.bpf.c", *flags: str) -> Path:
    """Compiles a BPF object the way the BPFBuilder plugin does (the toolchain's clang,
    -target bpf, the shared header), plus `flags`."""
    clang = shutil.which("clang") or "/opt/swift/usr/bin/clang"
    multiarch = f"/usr/include/{platform.machine().replace('arm64', 'aarch64')}-linux-gnu"
    subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-Wall", "-Werror",
                    "-I", str(REPO_ROOT / "Sources" / "CMip6" / "include"), "-I", str(REPO_ROOT / "bpf"),
                    "-I", multiarch, *flags, "-c", str(source), "-o", str(out)], check=True)
    return out


def test_sigterm_then_newer_build_loses_no_packet(testbed, daemon, mobile_node, mn, tmp_path):
    """An upgrade of the data plane: the same source built differently (`-mcpu=v4`, so other
    instructions), started with `--program-object` after a SIGTERM. Its program replaces the
    built-in one under the ping stream (the kernel's program tag changes), nothing is lost,
    and a start without the option rolls back to the built-in program, bindings kept."""
    tb = testbed
    newer = build_program_object(tmp_path / "mip6_ha.newer.bpf.o", REPO_ROOT / "bpf" / "mip6_ha.bpf.c", "-mcpu=v4")
    digest = hashlib.sha256(newer.read_bytes()).hexdigest()[:16]
    mn_daemon = mobile_node(lifetime=120)
    mark = len(daemon.log_text())
    seen = restart_under_ping(tb, daemon, mn_daemon, lambda d: d.stop(), ["--program-object", str(newer)])
    assert seen["exit_code"] == 0, f"`mip6 ha` exited {seen['exit_code']} on SIGTERM"
    assert_nothing_lost(seen, tb, daemon, mn)
    before, after = seen["program_before"], seen["program_after"]
    assert after["kind"] == before["kind"] and after["id"] != before["id"]
    assert after["tag"] and after["tag"] != before["tag"], \
        f"the program on the link is still the built-in build (tag {after['tag']})"
    log = daemon.log_text()[mark:]
    assert f"mip6.file={newer}" in log and f"mip6.sha256={digest}" in log, \
        "the daemon did not say which object file it loaded"
    assert f"mip6.program_tag={after['tag']}" in log, "the attach log line does not name the program's tag"
    shown = json.loads(daemon.cli("dataplane", "status", "--json", "--bpffs", daemon.bpffs).stdout)["programs"][tb.HA_IF]
    assert shown["tag"] == after["tag"], f"`mip6 dataplane status` shows {shown}, the link has {after}"

    # Rollback: SIGTERM, start without --program-object: the built-in program is back.
    assert daemon.stop() == 0
    daemon.argv = [a for a in daemon.argv if a not in ("--program-object", str(newer))]
    daemon.start(READY_TIMEOUT, append=True)
    back = daemon.attached_program()
    print(f"built-in {before}; newer build {after}; after the rollback {back}")
    assert back["tag"] == before["tag"], f"rollback left tag {back['tag']}, the built-in program is {before['tag']}"
    assert daemon.binding(tb.HOA) is not None, "the rollback lost the binding"
    received, _ = ping(tb, "cn", tb.HOA, count=3, interval=0.2)
    assert received == 3, "CN -> home address after the rollback"


def test_link_local_defence_is_pinned_state_too(testbed, daemon, mn):
    """L flag (RFC 6275 §10.3.1): the link-local address is defended by the pinned data plane
    like the home address: on while the control plane is down, adopted by the next start, and
    over when the binding's lifetime is, daemon or not (ha_binding_live)."""
    tb = testbed
    ha_mac, ll = tb.mac("ha", tb.HA_IF), derived_link_local(tb.HOA)
    ba = mn.register(seq=1, lifetime=8, extra=("--flags", "AHL"))
    assert ba.get("status") == 0, ba
    granted_until = time.monotonic() + ba["lifetime"]
    assert daemon.kill() == -9
    assert (router_resolves(tb, ll) or {}).get("lladdr") == ha_mac, "not defended while the daemon was down"
    daemon.start(READY_TIMEOUT, append=True)
    assert daemon.binding(tb.HOA).get("linkLocal") == ll, "the restart did not adopt the link-local defence"
    assert (router_resolves(tb, ll) or {}).get("lladdr") == ha_mac
    daemon.kill()
    time.sleep(max(0.0, granted_until - time.monotonic()) + 1.5)
    entry = router_resolves(tb, ll)
    print(f"after the lifetime, no daemon: {entry}")
    assert (entry or {}).get("lladdr") != ha_mac, "defended past the binding's lifetime"


FOREIGN_OBJECT = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, __u64); __uint(max_entries, 1); } mip6_counters SEC(".maps");
SEC("xdp") int mip6_ha_xdp(struct xdp_md *ctx) { return XDP_PASS; }
SEC("tc") int mip6_ha_tc(struct __sk_buff *skb) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("case", ["missing", "not-elf", "no-programs", "other-maps"])
def test_bad_program_object_is_refused_before_touching_the_pins(testbed, daemon, mobile_node, tmp_path, case):
    """`--program-object` with a file that is not a home-agent object of this release's map
    layout: a clear error, exit non-zero, and the running data plane is left as it was."""
    tb = testbed
    mobile_node(lifetime=120).wait_registered(tb.COA1, timeout=8)
    if case == "missing":
        path, expect = tmp_path / "absent.o", "cannot read it"
    elif case == "not-elf":
        path, expect = tmp_path / "notes.o", "not a BPF object"
        path.write_text("not an ELF file\n")
    elif case == "no-programs":   # the mobile node's object: other programs
        path, expect = build_program_object(tmp_path / "mn.o", REPO_ROOT / "bpf" / "mip6_mn.bpf.c"), "has no program mip6_ha_xdp"
    else:                         # the right program names over a map of another layout
        src = tmp_path / "foreign.bpf.c"
        src.write_text(FOREIGN_OBJECT)
        path, expect = build_program_object(tmp_path / "foreign.o", src), "its maps differ"
    assert daemon.stop() == 0
    program = daemon.attached_program()
    daemon.argv += ["--program-object", str(path)]
    mark = len(daemon.log_text())
    with pytest.raises(Exception):
        daemon.start(5, append=True)
    log = daemon.log_text()[mark:]
    print(log[-800:])
    assert daemon.proc.returncode not in (None, 0), "a refused start must exit non-zero"
    assert expect in log and str(path) in log, f"the refusal does not say what is wrong with {path}"
    assert daemon.attached_program() == program, "the refused start changed the program on the link"
    assert daemon.binding(tb.HOA) is not None, "the refused start changed the pinned bindings"
    received, _ = ping(tb, "cn", tb.HOA, count=2, interval=0.2)
    assert received == 2, "forwarding stopped after a refused start"


def test_incompatible_pins_are_refused_untouched(testbed, daemon, mn):
    """A pinned state from another layout version is refused with a clear message, never half-used."""
    tb = testbed
    ba = mn.register(seq=1, lifetime=60)
    assert ba.get("status") == 0, ba
    daemon.stop()
    # Pretend another version made the pins: state version 999 in mip6_meta (bytes 4..7).
    tb.run("ha", ["bpftool", "map", "update", "pinned", f"{daemon.bpffs}/mip6_meta", "key", "0", "0", "0", "0",
                  "value", *("0x36 0x50 0x49 0x4d 0xe7 0x03 0x00 0x00".split()), *(["0"] * 56)])
    mark = len(daemon.log_text())
    with pytest.raises(Exception):
        daemon.start(5, append=True)
    log = daemon.log_text()[mark:]
    print(log[-1500:])
    assert daemon.exit_code not in (None, 0) or (daemon.proc and daemon.proc.returncode not in (None, 0))
    assert "state version 999" in log and "mip6 dataplane detach" in log, "the refusal does not say why and what to do"
    assert daemon.binding(tb.HOA) is not None, "the refused pins were changed"
    assert daemon.attached_program(), "the refused start took the old program off the link"
    # The documented way out: detach, then a fresh start.
    out = daemon.detach(check=True)
    print(out.stdout)
    assert daemon.attached_program() is None, "program still attached after `mip6 dataplane detach`"
    daemon.start(READY_TIMEOUT, append=True)
    assert daemon.binding(tb.HOA) is None


def test_dataplane_detach_removes_everything(testbed, daemon, mn):
    tb = testbed
    assert mn.register(seq=1, lifetime=60).get("status") == 0
    status = json.loads(daemon.cli("dataplane", "status", "--json", "--bpffs", daemon.bpffs).stdout)
    print(status)
    assert status["compatible"] and status["bindings"] == 1 and status["interfaces"].get(tb.HA_IF) in ("xdp", "xdp-generic", "tc")
    refused = daemon.detach()
    assert refused.returncode != 0 and "still running" in refused.stderr, "detach must refuse while the daemon runs"
    assert daemon.stop() == 0
    on_link = daemon.attached_program()
    assert on_link, "SIGTERM must leave the data plane running"
    # With the daemon down, `dataplane status` still says which program forwards.
    shown = json.loads(daemon.cli("dataplane", "status", "--json", "--bpffs", daemon.bpffs).stdout)["programs"][tb.HA_IF]
    assert shown and shown["id"] == on_link["id"] and shown["tag"] == on_link["tag"], (shown, on_link)
    out = daemon.detach(check=True)
    print(out.stdout)
    assert daemon.attached_program() is None
    assert not daemon.bpffs_host.exists(), f"pins left in {daemon.bpffs_host}"
    received, _ = ping(tb, "cn", tb.HOA, count=2, interval=0.2)
    assert received == 0, "the home address is still reachable after detach"


class PlainNetnsHomeAgent(HomeAgent):
    """`mip6 ha` started as a new user starts it: `ip netns exec NS mip6 ha ...`, with no help
    from the testbed (which otherwise binds its own bpffs over the fresh /sys that `ip netns
    exec` mounts). --bpffs is under /sys/fs/bpf like the default, /sys/fs/bpf/mip6, but named
    for this run, so that it never touches a real home agent's pins on the machine."""

    def __init__(self, tb, binary, log_path):
        super().__init__(tb, binary, log_path, attach_mode="auto")
        self.bpffs = f"/sys/fs/bpf/mip6-e2e-{tb.tag}"
        self.bpffs_host = Path(self.bpffs)            # PID 1's view: the host's bpffs
        self.state_dir = f"/run/mip6-e2e-{tb.tag}"
        i = self.argv.index("--bpffs")
        self.argv[i + 1] = self.bpffs
        self.argv[self.argv.index("--state-dir") + 1] = self.state_dir
        self.launcher = lambda argv: ["ip", "netns", "exec", tb.ns("ha"), *argv]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cp = subprocess.run(["ip", "netns", "exec", self.tb.ns("ha"), str(self.binary), *args],
                            capture_output=True, text=True, timeout=20, cwd=REPO_ROOT)
        if check and cp.returncode != 0:
            raise AssertionError(f"mip6 {' '.join(args)} exited {cp.returncode}: {cp.stderr.strip()}")
        return cp

    def pinned_map_id(self, name: str = "mip6_bindings") -> int:
        cp = subprocess.run(["bpftool", "-j", "map", "show", "pinned", f"{self.bpffs_host}/{name}"],
                            capture_output=True, text=True, check=True)
        return json.loads(cp.stdout)["id"]


def test_kill_9_under_plain_ip_netns_exec_keeps_the_pins(testbed, mip6_bin, mobile_node, mn, tmp_path):
    """Issue 11 (4): `ip netns exec` mounts a fresh sysfs on /sys in a private mount namespace;
    a bpffs the daemon mounted there died with it, and with it every pin (222 of 500 pings
    lost, the binding gone, a replayed sequence accepted). The daemon must pin where the pins
    outlive it (the host's bpffs), or refuse to start and say how to fix it."""
    tb = testbed
    host_has_bpffs = subprocess.run(["stat", "-f", "-c", "%T", "/sys/fs/bpf"], capture_output=True, text=True).stdout.strip() == "bpf_fs"
    daemon = PlainNetnsHomeAgent(tb, mip6_bin, tmp_path / "mip6-ha-plain.log")
    daemon.clear_state()
    try:
        if not host_has_bpffs:
            with pytest.raises(HarnessError) as refused:
                daemon.start(READY_TIMEOUT)
            assert "mount -t bpf bpf /sys/fs/bpf" in str(refused.value), f"the refusal does not name the fix: {refused.value}"
            return
        daemon.start(READY_TIMEOUT)
        assert "pinning into the host's bpffs" in daemon.log_text(), "the daemon did not say where its pins go"
        assert (daemon.bpffs_host / "mip6_bindings").exists(), "the pins are not in the host's bpffs"
        # A second daemon on the same pin directory is refused (it would share the ring and diverge).
        second = subprocess.run(["ip", "netns", "exec", tb.ns("ha"), *daemon.argv], capture_output=True, text=True, timeout=20)
        assert second.returncode != 0 and "in use by another mip6 daemon" in second.stderr + second.stdout, \
            f"a second daemon on {daemon.bpffs} was not refused: {second.returncode} {second.stderr[-400:]}"

        mn_daemon = mobile_node(lifetime=120)
        try:
            seen = restart_under_ping(tb, daemon, mn_daemon, lambda d: d.kill())
            assert seen["exit_code"] == -9
            assert_nothing_lost(seen, tb, daemon, mn)
            assert "adopting the pinned data plane" in daemon.log_text()
        finally:
            mn_daemon.stop()
    finally:
        daemon.stop()
        daemon.cli("dataplane", "detach", "--bpffs", daemon.bpffs, "--state-dir", daemon.state_dir, check=False)
        daemon.clear_state()


def test_binding_expires_in_the_data_plane_while_the_daemon_is_down(testbed, daemon, mn):
    """RFC 6275 §10.3.1: a binding is used for its lifetime only, daemon or not. Register
    for 8 s, kill the daemon: the data plane tunnels while the binding lives and stops at
    its expiry (counted as pass_expired), with nobody left to remove it."""
    tb = testbed
    ba = mn.register(seq=300, lifetime=8)
    t_registered = time.monotonic()
    assert ba.get("status") == 0 and ba.get("lifetime") == 8, ba
    assert daemon.kill() == -9
    tunneled = f"ip6 and src {tb.HA} and dst {tb.COA1} and ip6[6] == 41"

    before = daemon.stats()["dataplane"]
    cap = Capture(tb, "mn", tb.MN_IF1, tunneled).start()
    ping_cn(tb, count=3, interval=0.1, wait=0.5)
    while_live = cap.stop()
    live = daemon.stats()["dataplane"]
    assert time.monotonic() - t_registered < 7, "too slow to see the binding live"
    assert live["encap"] - before["encap"] >= 3, f"not tunneled while the binding lived: {before} -> {live}"
    assert len(while_live) >= 3, f"the care-of address got {len(while_live)} tunneled packets"

    time.sleep(max(0.0, t_registered + 8.5 - time.monotonic()))
    cap = Capture(tb, "mn", tb.MN_IF1, tunneled).start()
    ping_cn(tb, count=3, interval=0.1, wait=0.5)
    after_expiry = cap.stop()
    expired = daemon.stats()["dataplane"]
    print(f"while live: {live['encap'] - before['encap']} tunneled; after expiry: encap +{expired['encap'] - live['encap']}, "
          f"pass_expired +{expired['pass_expired'] - live['pass_expired']}, captured {len(after_expiry)}")
    assert expired["encap"] == live["encap"], "a binding past its lifetime was still tunneled"
    assert expired["pass_expired"] - live["pass_expired"] >= 3
    assert after_expiry == [], f"tunneled packets reached the care-of address after the expiry: {after_expiry}"
