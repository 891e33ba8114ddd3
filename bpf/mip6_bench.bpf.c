// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Baselines for perf/: the cheapest XDP programs, measured next to ours in the same run. */
#include "mip6_parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The floor: hand every frame to the kernel. */
SEC("xdp")
int mip6_bench_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Parse Ethernet + IPv6, swap the MACs and send the frame back: the least a forwarder does. */
SEC("xdp")
int mip6_bench_tx(struct xdp_md *ctx)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	struct ethhdr *eth = parse_ethhdr(&c);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IPV6))
		return XDP_PASS;
	struct ipv6hdr *ip6 = parse_ipv6hdr(&c);
	if (!ip6)
		return XDP_DROP;
	__u8 tmp[ETH_ALEN];
	mac_copy(tmp, eth->h_dest);
	mac_copy(eth->h_dest, eth->h_source);
	mac_copy(eth->h_source, tmp);
	return XDP_TX;
}
