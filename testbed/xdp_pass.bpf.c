// SPDX-License-Identifier: GPL-2.0
//
// Trivial XDP program for the router-side peer of the home agent's veth (h-ha).
//
// A native XDP_TX on a veth (the home agent's ha0) only delivers the frame when
// the PEER veth runs in XDP mode too; otherwise veth_xdp_xmit() drops it. The
// testbed attaches this program to h-ha so the home agent's XDP_TX works.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
