"""`mip6 ha --http-listen`: /healthz, /readyz and Prometheus /metrics, scraped for real
from inside the home agent's namespace while a mobile node is registered and traffic flows."""

from __future__ import annotations

import json

import pytest

from conftest import ping
from testbed.harness import http_get, metric_samples

LISTEN = "[::1]:9464"


def get(tb, path: str) -> dict:
    return http_get(tb, "ha", f"http://{LISTEN}{path}")


@pytest.mark.daemon_args("--http-listen", LISTEN, "--no-dad")
def test_probes_and_metrics_are_served(testbed, daemon, mn):
    tb = testbed
    h = get(tb, "/healthz")
    assert h["status"] == 200, h
    r = get(tb, "/readyz")
    print(r["body"])
    assert r["status"] == 200, f"not ready right after start: {r}"
    assert "programs" in r["body"] and "maps" in r["body"] and "signaling" in r["body"]

    ba = mn.register(seq=1, lifetime=60)
    assert ba.get("status") == 0, ba
    responder = mn.responder(duration=12)
    try:
        received, _ = ping(tb, "cn", tb.HOA, count=5, interval=0.1)
    finally:
        responder.finish()
    assert received == 5
    bad = mn.register(seq=1, lifetime=60)  # same sequence again: 135
    assert bad.get("status") == 135, bad

    m = get(tb, "/metrics")
    assert m["status"] == 200 and m["type"].startswith("text/plain"), m["type"]
    text = m["body"]
    print("\n".join(line for line in text.splitlines() if line.startswith("mip6_") and " 0" not in line[-2:])[:4000])
    assert metric_samples(text, "mip6_bindings") == {"": 1.0}
    acks = metric_samples(text, "mip6_binding_acks_total")
    assert any('status="0"' in k and v >= 1 for k, v in acks.items()), acks
    assert any('status="135"' in k and v >= 1 for k, v in acks.items()), acks
    assert metric_samples(text, "mip6_binding_updates_total")[""] >= 2
    encap = {k: v for k, v in metric_samples(text, "mip6_dataplane_packets_total").items() if 'reason="encap"' in k}
    assert encap and list(encap.values())[0] >= 5, encap
    per_binding = metric_samples(text, "mip6_binding_packets_total")
    to_mn = [v for k, v in per_binding.items() if f'hoa="{tb.HOA}"' in k and "to_mn" in k]
    assert to_mn and to_mn[0] >= 5, f"no per-binding series for {tb.HOA}: {per_binding}"
    latency = metric_samples(text, "mip6_ba_latency_seconds_count")
    assert latency and list(latency.values())[0] >= 2, f"BA latency histogram empty: {latency}"
    assert "mip6_punts_rate_limited_total" in text

    # Readiness follows the data plane: take the program off behind the daemon's back.
    prog = daemon.attached_program()
    if prog["kind"] == "tc":
        tb.run("ha", ["tc", "filter", "del", "dev", tb.HA_IF, "ingress"])
    else:
        link = json.loads(tb.run("ha", ["bpftool", "-j", "link", "show"]).stdout)
        ids = [x["id"] for x in link if x.get("type") == "xdp"]
        tb.run("ha", ["bpftool", "link", "detach", "id", str(ids[0])])
    r = get(tb, "/readyz")
    print(r["body"])
    assert r["status"] == 503 and "[-]programs" in r["body"], r
    assert get(tb, "/healthz")["status"] == 200, "liveness must not follow the data plane"
    assert daemon.stop() == 0


def test_bad_http_listen_is_refused(testbed, mip6_bin):
    cp = testbed.run("ha", [str(mip6_bin), "ha", "--interface", testbed.HA_IF, "--address", testbed.HA,
                            "--home-prefix", testbed.HOME_PREFIX, "--http-listen", "nowhere"], check=False)
    assert cp.returncode != 0
    assert "--http-listen" in cp.stderr and "ADDR:PORT" in cp.stderr, cp.stderr


@pytest.mark.daemon_args("--no-dad")
def test_bindings_delete_and_flush_evict_without_bpftool(testbed, daemon, mn):
    """Issue 11 (10): an operator evicts a binding with the CLI. The data plane forgets it at
    once, the running daemon (told with SIGHUP) forgets it too, so the mobile node's next BU,
    even with an old sequence number, is a new registration; `flush` evicts them all."""
    tb = testbed
    assert mn.register(seq=10, lifetime=60).get("status") == 0
    other = "2001:db8:1::1ab"
    assert mn.register(seq=3, lifetime=60, hoa=other).get("status") == 0
    assert daemon.binding(tb.HOA) is not None and daemon.binding(other) is not None

    cp = daemon.cli("bindings", "delete", tb.HOA, "--json", "--bpffs", daemon.bpffs, "--state-dir", daemon.state_dir)
    out = json.loads(cp.stdout)
    assert [b["homeAddress"] for b in out["evicted"]] == [tb.HOA] and out["daemonNotified"] is True, out
    assert daemon.binding(tb.HOA) is None, "still in the data plane"
    assert daemon.binding(other) is not None, "delete took another binding with it"
    again = daemon.cli("bindings", "delete", tb.HOA, "--bpffs", daemon.bpffs, "--state-dir", daemon.state_dir, check=False)
    assert again.returncode == 1 and "no binding for" in again.stderr

    # The daemon dropped it from its cache: a lower sequence number is a new registration (no 135).
    ba = mn.register(seq=5, lifetime=60)
    assert ba.get("status") == 0, f"the daemon still judged the evicted binding's sequence number: {ba}"
    assert daemon.binding(tb.HOA)["sequence"] == 5

    cp = daemon.cli("bindings", "flush", "--json", "--bpffs", daemon.bpffs, "--state-dir", daemon.state_dir)
    out = json.loads(cp.stdout)
    assert sorted(b["homeAddress"] for b in out["evicted"]) == sorted([tb.HOA, other]), out
    assert daemon.bindings() == []
    assert mn.register(seq=1, lifetime=60).get("status") == 0, "after a flush every node registers afresh"
    assert "evicted from the data plane by an operator" in daemon.log_text()
