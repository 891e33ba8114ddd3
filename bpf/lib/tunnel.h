/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IPv6-in-IPv6 (RFC 2473): the outer header of an encapsulation. */
#ifndef M6_LIB_TUNNEL_H
#define M6_LIB_TUNNEL_H

#include "ctx.h"

/*
 * After m6_open_room(ctx, hook, IPV6_HLEN, ...): write the outer header into the room.
 * `first_word`: the inner header's version, traffic class and flow label (copied out,
 * RFC 2473 §6.4); `inner_len`: the inner packet's length. The outer header, with *eth
 * set to the Ethernet header in front of it, or NULL when the frame is no longer
 * readable. TC: a CHECKSUM_COMPLETE skb's sum covers the new header.
 */
static __always_inline struct ipv6hdr *m6_tunnel_header(void *ctx, const enum m6_hook hook, struct ethhdr **eth,
							__u32 first_word, __u32 inner_len, __u8 hop_limit,
							const __u8 *src, const __u8 *dst)
{
	void *data = m6_data(ctx, hook);
	void *data_end = m6_data_end(ctx, hook);
	struct ipv6hdr *outer = data + ETH_HLEN_;
	if ((void *)(outer + 1) > data_end)
		return NULL;
	*eth = data;
	ipv6_write(outer, first_word, inner_len, IPPROTO_IPV6_, hop_limit, src, dst);
	m6_csum_replaced(ctx, hook, 0, 0, (void *)outer, IPV6_HLEN);
	return outer;
}

#endif /* M6_LIB_TUNNEL_H */
