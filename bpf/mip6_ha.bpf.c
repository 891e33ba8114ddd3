// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Home-agent data plane (RFC 6275 §10.4) on the home-link interface: one body (ha.h) in
 * two attach modes that share every map (ha_maps.h):
 *
 *  mip6_ha_xdp  SEC("xdp"): the fastest per packet, but native XDP on veth turns TSO/GSO off.
 *  mip6_ha_tc   SEC("tc"), cls_bpf direct action on clsact ingress: works on skbs, so TCP
 *               GSO packets stay GSO through encapsulation and decapsulation.
 *
 * The control plane owns every map but the counters; these programs only read bindings.
 */
#include "ha.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int mip6_ha_xdp(struct xdp_md *ctx)
{
	return ha_process(ctx, M6_XDP);
}

SEC("tc")
int mip6_ha_tc(struct __sk_buff *skb)
{
	return ha_process(skb, M6_TC);
}
