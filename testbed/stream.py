"""A constant-rate UDP stream with sequence numbers, for measuring handovers.

One definition for the demo (scripts/demo.py), the e2e tests and perf/handover.py:

    ip netns exec m6-mn /usr/bin/python3 -m testbed.stream recv --bind 2001:db8:1::100
    ip netns exec m6-cn /usr/bin/python3 -m testbed.stream send --dst 2001:db8:1::100 --rate 1000

Every datagram carries a magic, the run id, its sequence number and its send time
(CLOCK_MONOTONIC, which every network namespace of the machine shares, so
arrival - send is the one-way delay). The receiver records sequence number,
send time and arrival time of every datagram; `analyse()` turns sender and
receiver output into loss and outage figures:

- lost: sent minus distinct sequence numbers received (a datagram still in
  flight when the receiver stops counts as lost: stop the sender first);
- outage: the interruption with the most datagrams missing, from the arrival of
  the last datagram before it to the arrival of the first one after it
  (`gap_lost` missing in between); with nothing lost, the longest silence
  between two arrivals. At 1000 datagrams/s arrivals are 1 ms apart.

Both ends stop at --duration or on SIGTERM/SIGINT and print one JSON object on
stdout. The receiver prints READY on stderr once bound (IPV6_FREEBIND: it may
bind the home address before the mobile node daemon has put it on lo), the
sender SENDING when the first datagram leaves.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import sys
import time

MAGIC = b"M6ST"
HEADER = struct.Struct("!4sIQQ")          # magic, run id, sequence, send time (ns)
IPV6_FREEBIND = 78                        # linux/in6.h; not in Python's socket module
DEFAULT_PORT = 5555


class _Stop(Exception):
    pass


def _raise_stop(signum, frame):
    raise _Stop()


def _stop_on_signals() -> None:
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)


def _quiet_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def send(dst: str, port: int, rate: float, duration: float, size: int, run_id: int, src: str | None = None) -> dict:
    """Send `rate` datagrams/s to [dst]:port for `duration` s (or until SIGTERM), from `src`
    when given (a mobile node's home address: the kernel would pick the care-of address).

    Each datagram has its own slot (start + n / rate); a late sender does not burst to
    catch up by more than one slot, so a stall shows as a gap rather than a burst."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    if src:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
        s.bind((src, 0))
    s.connect((dst, port))
    payload_pad = bytes(max(0, size - HEADER.size))
    interval_ns = int(1e9 / rate)
    sent = errors = late = 0
    first_ns = last_ns = None
    _stop_on_signals()
    start = time.monotonic_ns()
    end = start + int(duration * 1e9)
    next_ns = start
    try:
        while True:
            now = time.monotonic_ns()
            if now >= end:
                break
            if next_ns > now:
                time.sleep((next_ns - now) / 1e9)
                now = time.monotonic_ns()
            elif now - next_ns > interval_ns:
                late += 1
                next_ns = now
            try:
                s.send(HEADER.pack(MAGIC, run_id, sent, now) + payload_pad)
                if first_ns is None:
                    first_ns = now
                    print("SENDING", file=sys.stderr, flush=True)
                last_ns = now
            except OSError:
                errors += 1        # e.g. no route for a moment: counted as sent-and-lost
            sent += 1
            next_ns += interval_ns
    except _Stop:
        pass
    _quiet_signals()
    s.close()
    return {"role": "sender", "dst": dst, "port": port, "rate": rate, "size": max(size, HEADER.size),
            "run_id": run_id, "sent": sent, "send_errors": errors, "late_slots": late,
            "first_ns": first_ns, "last_ns": last_ns}


def receive(bind: str, port: int, duration: float, run_id: int | None) -> dict:
    """Record (sequence, send time, arrival time) of every datagram of the stream."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, IPV6_FREEBIND, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((bind, port))
    seqs: list[int] = []
    sent_ns: list[int] = []
    arrived_ns: list[int] = []
    foreign = 0
    _stop_on_signals()
    print("READY", file=sys.stderr, flush=True)
    deadline = time.monotonic() + duration
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(min(left, 0.5))
            try:
                data = s.recv(65535)
            except socket.timeout:
                continue
            t = time.monotonic_ns()
            if len(data) < HEADER.size:
                foreign += 1
                continue
            magic, rid, seq, ts = HEADER.unpack_from(data)
            if magic != MAGIC or (run_id is not None and rid != run_id):
                foreign += 1
                continue
            seqs.append(seq)
            sent_ns.append(ts)
            arrived_ns.append(t)
    except _Stop:
        pass
    _quiet_signals()
    s.close()
    return {"role": "receiver", "bind": bind, "port": port, "received": len(seqs), "foreign": foreign,
            "seq": seqs, "sent_ns": sent_ns, "arrived_ns": arrived_ns}


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def analyse(sender: dict, receiver: dict, events: dict[str, int] | None = None) -> dict:
    """Loss and outage of one stream. `events` maps a name to a CLOCK_MONOTONIC time in ns
    (e.g. {"link_down": ...}); each is reported relative to the outage.

    The outage is the interruption with the most datagrams missing: from the arrival of the
    last datagram before the run of missing sequence numbers to the arrival of the first
    after it. With nothing lost, it is the longest silence between two arrivals (a delay,
    not a loss). `max_gap_ms` is always the longest silence, wherever it was."""
    seqs, sent_ns, arr_ns = receiver["seq"], receiver["sent_ns"], receiver["arrived_ns"]
    sent = sender["sent"]
    first: dict[int, tuple[int, int]] = {}          # seq -> (send time, first arrival)
    for q, t_s, t_a in zip(seqs, sent_ns, arr_ns):
        first.setdefault(q, (t_s, t_a))
    got = sorted(q for q in first if q < sent)
    out = {
        "sent": sent,
        "received": len(seqs),
        "lost": sent - len(got),
        "duplicates": len(seqs) - len(first),
        "reordered": 0,
        "interval_ms": 1000.0 / sender["rate"],
        "loss_runs": 0,
        "outage_ms": None,
        "gap_lost": 0,
        "max_gap_ms": None,
        "last_before": None,
        "first_after": None,
    }
    if sent:
        out["loss_percent"] = round(100.0 * out["lost"] / sent, 3)
    highest = -1
    for q in seqs:
        if q < highest:
            out["reordered"] += 1
        highest = max(highest, q)
    if len(arr_ns) >= 2:
        out["max_gap_ms"] = round(max(b - a for a, b in zip(arr_ns, arr_ns[1:])) / 1e6, 3)
    if len(got) >= 2:
        runs = [(b - a - 1, first[b][1] - first[a][1], a, b) for a, b in zip(got, got[1:]) if b - a > 1]
        out["loss_runs"] = len(runs)
        if runs:
            missing, _gap, a, b = max(runs)
        else:
            # Nothing lost: the longest silence between consecutive arrivals.
            i = max(range(1, len(arr_ns)), key=lambda k: arr_ns[k] - arr_ns[k - 1])
            missing, a, b = 0, seqs[i - 1], seqs[i]
        out["gap_lost"] = missing
        out["outage_ms"] = round((first[b][1] - first[a][1]) / 1e6, 3)
        out["outage_send_ms"] = round((first[b][0] - first[a][0]) / 1e6, 3)
        out["last_before"] = {"seq": a, "arrived_ns": first[a][1]}
        out["first_after"] = {"seq": b, "arrived_ns": first[b][1]}
        for name, t in (events or {}).items():
            out[f"{name}_to_first_after_ms"] = round((first[b][1] - t) / 1e6, 3)
            out[f"last_before_to_{name}_ms"] = round((t - first[a][1]) / 1e6, 3)
    if arr_ns:
        out["last_arrived_ns"] = max(arr_ns)
        delays = sorted((a - s) / 1e3 for a, s in zip(arr_ns, sent_ns))
        out["delay_us"] = {"median": round(_percentile(delays, 0.5), 1),
                           "p99": round(_percentile(delays, 0.99), 1), "max": round(delays[-1], 1)}
    return out


def summary(a: dict) -> str:
    """One line for people."""
    if a.get("outage_ms") is None:
        return f"{a['received']}/{a['sent']} datagrams received"
    what = "outage" if a["gap_lost"] else "no loss, longest gap"
    return (f"{a['sent']} sent, {a['lost']} lost ({a.get('loss_percent', 0):.2f}%) in {a['loss_runs']} run(s); "
            f"{what} {a['outage_ms']:.1f} ms (#{a['last_before']['seq']} -> #{a['first_after']['seq']}, "
            f"{a['gap_lost']} missing); longest silence {a['max_gap_ms']:.1f} ms; "
            f"{a['reordered']} reordered, {a['duplicates']} duplicated")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m testbed.stream", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("send")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--rate", type=float, default=1000.0, help="datagrams per second (default 1000)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds (SIGTERM ends it early)")
    p.add_argument("--size", type=int, default=64, help="UDP payload bytes (at least 24)")
    p.add_argument("--run-id", type=int, default=os.getpid())
    p.add_argument("--src", help="source address (default: the kernel's choice)")
    p = sub.add_parser("recv")
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--duration", type=float, default=120.0, help="seconds (SIGTERM ends it early)")
    p.add_argument("--run-id", type=int, help="only count this run's datagrams")
    args = ap.parse_args(argv)
    try:
        if args.command == "send":
            res = send(args.dst, args.port, args.rate, args.duration, args.size, args.run_id, args.src)
        else:
            res = receive(args.bind, args.port, args.duration, args.run_id)
    except OSError as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 2
    print(json.dumps(res, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
