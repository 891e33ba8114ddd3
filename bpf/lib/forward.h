/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The forwarding steps of the programs that tunnel (the home agent, the LMA, the MAG): parse
 * the frame, encapsulate toward a tunnel end (RFC 2473), route through a next-hop cache, take
 * the outer header off again, answer what does not fit with a rate-limited ICMPv6 error, and
 * send the packet on. Each helper returns an outcome (verdict.h): 0 for "go on" where a caller
 * continues, else a drop reason or a counter and a verdict, which the program's one exit counts.
 *
 * What differs between the programs comes in as a struct m6_fwd: their maps and the counters
 * that name each outcome (mip6_shared.h). Every program builds it from constants where it calls
 * in; after inlining nothing of it is left but immediates, and every `hook ==` still folds
 * (ctx.h). Config values are arguments, read where they are used: a field of the struct would
 * be loaded where the struct is built and held across every helper call in between.
 */
#ifndef M6_LIB_FORWARD_H
#define M6_LIB_FORWARD_H

#include "ctx.h"
#include "verdict.h"
#include "nexthop.h"
#include "ptb.h"
#include "ratelimit.h"
#include "tunnel.h"

struct m6_fwd {
	void *counters;          /* per-CPU array of __u64: the program's counters */
	void *icmp_tb;           /* array of one struct mip6_token_bucket: the ICMPv6 errors it originates */
	void *nh_cache;          /* LRU hash, destination -> struct mip6_nexthop (m6_fwd_route) */
	const __u8 *reply_smac;  /* Ethernet source of the ICMPv6 errors it sends; NULL: the frame's
	                          * destination, swapped in (ptb.h) */
	int ptb_short;           /* the outcome for a "too big" packet shorter than a quote */
	/* counters */
	__u32 drop_encap_gso;    /* a GSO packet the tunnel cannot carry; an outer payload over 65535 */
	__u32 drop_adjust_fail;  /* the kernel refused to resize the frame */
	__u32 drop_icmp_rate_limited;
	__u32 encap_limit;       /* RFC 2473 §5.1: a limit of 0 (dropped, or answered with Parameter Problem) */
	__u32 encap_too_big;     /* a Packet Too Big sent */
	__u32 encap;             /* encapsulated (counted on the way) */
	__u32 nh_cache_hit, nh_cache_miss;
};

/* ---- the frame ---- */

/* Ethernet + IPv6 from the start of the frame, the cursor after them; 0, or the outcome for a
 * frame that is not: passed as `not_ipv6`, or dropped as `malformed`. */
static __always_inline int m6_parse_frame(void *ctx, const enum m6_hook hook, struct cursor *c, struct ethhdr **eth,
					  struct ipv6hdr **ip6, __u32 not_ipv6, __u32 malformed)
{
	c->pos = m6_data(ctx, hook);
	c->end = m6_data_end(ctx, hook);
	*eth = parse_ethhdr(c);
	if (!*eth || (*eth)->h_proto != bpf_htons(ETH_P_IPV6))
		return M6_PASS(hook, not_ipv6);
	*ip6 = parse_ipv6hdr(c);
	return *ip6 ? 0 : M6_DROP(malformed);
}

/* ---- forwarding ---- */

/* RFC 8200 §3, RFC 2473 §3.1: we forward the packet once (the entry or exit point of a tunnel
 * is a hop); the skb checksum follows (TC). */
static __always_inline void m6_hop_limit_dec(void *ctx, const enum m6_hook hook, struct ipv6hdr *ip6)
{
	__u32 old_word = ((__u32 *)ip6)[1];
	ip6->hop_limit--;
	__u32 new_word = ((__u32 *)ip6)[1];
	m6_csum_replaced(ctx, hook, &old_word, 4, &new_word, 4);
}

/* The route for `fib` through the program's next-hop cache (nexthop.h) of generation `gen`, a hit
 * or a miss counted. */
static __always_inline int m6_fwd_route(void *ctx, const struct m6_fwd *f, __u32 gen, __u64 now,
					struct bpf_fib_lookup *fib)
{
	int hit;
	int rc = m6_fib_cached(ctx, f->nh_cache, gen, now, fib, &hit);
	m6_count(f->counters, hit ? f->nh_cache_hit : f->nh_cache_miss);
	return rc;
}

/* To the next hop (the FIB's, or the cache's): out of the arrival interface (counted as
 * `tx`), or redirected to another one (`redirect`). */
static __always_inline int m6_forward(void *ctx, const enum m6_hook hook, struct ethhdr *eth, __u32 ifindex,
				      const __u8 *smac, const __u8 *dmac, __u32 tx, __u32 redirect)
{
	mac_copy(eth->h_dest, dmac);
	mac_copy(eth->h_source, smac);
	if (ifindex == m6_ifindex(ctx, hook))
		return M6_OUT(tx, m6_tx(ctx, hook));
	return M6_OUT(redirect, m6_redirect(ctx, hook, ifindex, 0));
}

/* TC only: out of `ifindex` to the neighbour `via` (4 words, as bpf_redir_neigh's ipv6_nh, which
 * is only 4-byte aligned), or to the kernel's own route's when `via` is NULL; the kernel
 * resolves the neighbour and queues while it does. Counted as `cnt`. */
static __always_inline int m6_redirect_neigh(__u32 ifindex, const __u32 *via, __u32 cnt)
{
	if (!via)
		return M6_OUT(cnt, bpf_redirect_neigh(ifindex, NULL, 0, 0));
	struct bpf_redir_neigh nh = { .nh_family = AF_INET6_ };
	nh.ipv6_nh[0] = via[0];
	nh.ipv6_nh[1] = via[1];
	nh.ipv6_nh[2] = via[2];
	nh.ipv6_nh[3] = via[3];
	return M6_OUT(cnt, bpf_redirect_neigh(ifindex, &nh, sizeof(nh), 0));
}

/* ---- ICMPv6 errors for what cannot be tunneled ---- */

/* The frame is now an ICMPv6 error for the packet's source (ptb.h): from the program's MAC when
 * it names one, back out of the arrival interface, counted as `cnt`. */
static __always_inline int m6_fwd_reply(void *ctx, const enum m6_hook hook, const struct m6_fwd *f, __u32 cnt)
{
	if (f->reply_smac) {
		struct ethhdr *eth = m6_data(ctx, hook);
		if ((void *)(eth + 1) > m6_data_end(ctx, hook))
			return M6_DROP(f->drop_adjust_fail);
		mac_copy(eth->h_source, f->reply_smac);
	}
	return M6_OUT(cnt, m6_tx(ctx, hook));
}

/* RFC 2473 §7, RFC 4443 §3.2: the sender's packet does not fit the tunnel, whose MTU is `mtu`:
 * Packet Too Big from `src`, within the program's ICMPv6 error budget. */
static __always_inline int m6_fwd_packet_too_big(void *ctx, const enum m6_hook hook, const struct m6_fwd *f,
						 const __u8 *src, __u32 mtu, __u64 now)
{
	if (!m6_icmp_error_allowed(f->icmp_tb, now))
		return M6_DROP(f->drop_icmp_rate_limited);
	int rc = m6_packet_too_big(ctx, hook, src, mtu);
	if (rc == M6_PTB_NOT_TOO_BIG) /* only a route below 1280 + our headers leaves one */
		return f->ptb_short;
	if (rc)
		return M6_DROP(f->drop_adjust_fail);
	return m6_fwd_reply(ctx, hook, f, f->encap_too_big);
}

/* RFC 2473 §5.1: the packet's Tunnel Encapsulation Limit is 0. It is discarded and its source
 * gets a Parameter Problem from `src`, code 0, pointing at the limit (`pointer`, from the IPv6
 * header), within the ICMPv6 error budget; none to a source that names no node (RFC 4443 §2.4(e)). */
static __always_inline int m6_fwd_encap_limit_spent(void *ctx, const enum m6_hook hook, const struct m6_fwd *f,
						    const __u8 *src, const struct ipv6hdr *ip6, __u32 pointer,
						    __u32 inner_len, __u64 now)
{
	if (addr_is_multicast(ip6->saddr.s6_addr) || addr_is_unspecified(ip6->saddr.s6_addr))
		return M6_DROP(f->encap_limit);
	if (!m6_icmp_error_allowed(f->icmp_tb, now))
		return M6_DROP(f->drop_icmp_rate_limited);
	if (m6_param_problem(ctx, hook, src, pointer, inner_len))
		return M6_DROP(f->drop_adjust_fail);
	return m6_fwd_reply(ctx, hook, f, f->encap_limit);
}

/* RFC 8200 §3, RFC 4443 §3.3: a packet to forward whose hop limit is spent is discarded and its
 * source gets Time Exceeded, code 0, from `src` (a traceroute through us shows this hop), within
 * the ICMPv6 error budget; none for an ICMPv6 error (RFC 4443 §2.4(e.1)) or a source that names
 * no node (§2.4(e.3)): dropped as `spent`. `ip_len`: the packet, its IPv6 header included. */
static __always_inline int m6_fwd_time_exceeded(void *ctx, const enum m6_hook hook, const struct m6_fwd *f,
						const __u8 *src, const struct ipv6hdr *ip6, __u32 ip_len, __u64 now,
						__u32 sent, __u32 spent)
{
	if (addr_is_multicast(ip6->saddr.s6_addr) || addr_is_unspecified(ip6->saddr.s6_addr))
		return M6_DROP(spent);
	if (ip6->nexthdr == IPPROTO_ICMPV6_) {
		const __u8 *type = (const void *)(ip6 + 1);
		if ((void *)(type + 1) > m6_data_end(ctx, hook) || *type < 128) /* an error message */
			return M6_DROP(spent);
	}
	if (!m6_icmp_error_allowed(f->icmp_tb, now))
		return M6_DROP(f->drop_icmp_rate_limited);
	if (m6_icmp6_error(ctx, hook, src, 3, 0, 0, ip_len))
		return M6_DROP(f->drop_adjust_fail);
	return m6_fwd_reply(ctx, hook, f, sent);
}

/* ---- encapsulation toward a tunnel end ---- */

/* The IPv6 packet after the Ethernet header, about to be tunneled, as m6_encap_fit found it. */
struct m6_encap {
	__u64 room_flags; /* m6_open_room's */
	__u32 inner_len;  /* the packet, its IPv6 header included */
	__u32 first_word; /* its version, traffic class and flow label: copied out (RFC 2473 §6.4) */
	__u32 overhead;   /* bytes the encapsulation adds */
	__u32 wire_len;   /* what must fit the route: the tunnel packet, or one segment of it (GSO) */
	int tel;          /* the Tunnel Encapsulation Limit ours carries (tunnel.h), or M6_TEL_NONE */
};

/*
 * We copy payload_len into the outer header: it must not claim more than is there (0 would
 * be a jumbogram, which no tunnel carries). 1 when it is a length we can tunnel.
 */
static __always_inline int m6_encap_len_ok(void *ctx, const enum m6_hook hook, const struct ipv6hdr *ip6)
{
	__u32 plen = bpf_ntohs(ip6->payload_len);
	return plen != 0 && ETH_HLEN_ + IPV6_HLEN + plen <= m6_len(ctx, hook);
}

/*
 * What goes on the wire after encapsulation must fit the route: the packet + `overhead` (40,
 * or 48 with our Destination Options header), or one segment of a GSO skb (TC); 0 when the
 * tunnel cannot carry it. *flags: open_room's.
 * Encapsulating a GSO skb (bpf_skb_adjust_room with ENCAP_L3_IPV6 marks it SKB_GSO_IPXIP6,
 * so TSO/GSO segment it with the outer headers on every segment):
 *  - TCP: without FIXED_GSO the kernel lowers gso_size by the overhead, so every segment on
 *    the wire is exactly as long as the segment that arrived: one segment must fit the route.
 *  - UDP (UDP_L4 GSO): gso_size is each datagram's payload and cannot change (the kernel
 *    answers -ENOTSUPP); with FIXED_GSO every datagram grows by the overhead, and must still
 *    fit (if not, the sender gets Packet Too Big, as for a single datagram).
 *  - anything else (extension headers first, another GSO type): 0, counted and dropped
 *    as drop_encap_gso; the kernel's -ENOTSUPP for a type it cannot handle goes there too.
 */
static __always_inline __u32 m6_encap_wire_len(void *ctx, const enum m6_hook hook, struct ipv6hdr *ip6,
					       __u32 inner_len, __u32 overhead, __u64 *flags)
{
	if (hook == M6_XDP)
		return inner_len + overhead;
	*flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
	__u32 gso = m6_gso_size(ctx, hook);
	if (!gso)
		return inner_len + overhead;
	__u32 seg = m6_seg_len(ctx, hook, ETH_HLEN_, ip6->nexthdr, inner_len);
	if (seg == 0)
		return 0;
	if (ip6->nexthdr == IPPROTO_UDP_) {
		*flags |= BPF_F_ADJ_ROOM_FIXED_GSO;
		return seg + overhead;
	}
	if (gso <= overhead + IPV6_HLEN) /* nothing left of a segment once it shrinks by the overhead */
		return 0;
	return seg;
}

/*
 * The packet at `ip6` (after the Ethernet header, `inner_len` bytes: its length checked by
 * m6_encap_len_ok) is to be tunneled with the Tunnel Encapsulation Limit `tel` (m6_tel_next: not
 * M6_TEL_SPENT or M6_TEL_MALFORMED, which the caller answers first): what the encapsulation will
 * be, into *enc. 0 when the tunnel cannot carry it (drop_encap_gso): a GSO packet of a kind it
 * cannot segment, or an outer payload length over 65535.
 *
 * Not one step with the limit's: a helper that also returned the Parameter Problem's outcome
 * measured about 7% slower on the TC encapsulation path (mip6-bench xdp), for what looked like
 * the same instructions laid out differently.
 */
static __always_inline int m6_encap_fit(void *ctx, const enum m6_hook hook, struct ipv6hdr *ip6, __u32 inner_len,
					int tel, struct m6_encap *enc)
{
	enc->inner_len = inner_len;
	enc->first_word = *(__u32 *)ip6;
	enc->tel = tel;
	enc->overhead = m6_tunnel_overhead(tel);
	enc->room_flags = 0;
	enc->wire_len = m6_encap_wire_len(ctx, hook, ip6, inner_len, enc->overhead, &enc->room_flags);
	return enc->wire_len != 0 && enc->wire_len <= 0xffff &&
	       inner_len + enc->overhead - IPV6_HLEN <= 0xffff; /* the outer payload length */
}

/* RFC 2473 §7.1(b): the route's `mtu` is too small for a 1280-byte packet and our headers, and
 * the packet is 1280 bytes or less: the sender cannot be asked for less (1280 is the minimum
 * MTU, and 1280 again would loop), only a fragmented tunnel packet carries it. */
static __always_inline int m6_encap_needs_fragments(const struct m6_encap *enc, __u32 mtu)
{
	return mtu < 1280 + enc->overhead && enc->inner_len <= 1280;
}

/*
 * Tunnel the packet at `ip6` as `enc` says (its route found) from `src` to `dst`: its hop limit
 * less one, room for our headers, the headers written with the outer hop limit `hop_limit` (0:
 * MIP6_TUNNEL_HOP_LIMIT), counted as encapsulated. 0 with *eth at the Ethernet header in front
 * of them (every other packet pointer is void now), or the drop.
 */
static __always_inline int m6_encap_push(void *ctx, const enum m6_hook hook, const struct m6_fwd *f,
					 struct ipv6hdr *ip6, const struct m6_encap *enc, __u8 hop_limit,
					 const __u8 *src, const __u8 *dst, struct ethhdr **eth)
{
	m6_hop_limit_dec(ctx, hook, ip6);
	int err = m6_open_room(ctx, hook, enc->overhead, enc->room_flags);
	if (err == -ENOTSUPP_) /* a GSO type the kernel cannot re-segment behind an outer header */
		return M6_DROP(f->drop_encap_gso);
	if (err)
		return M6_DROP(f->drop_adjust_fail);
	if (!hop_limit)
		hop_limit = MIP6_TUNNEL_HOP_LIMIT;
	if (!m6_tunnel_header(ctx, hook, eth, enc->first_word, enc->inner_len, hop_limit, src, dst, enc->tel))
		return M6_DROP(f->drop_adjust_fail);
	m6_count(f->counters, f->encap);
	return 0;
}

/* ---- decapsulation ---- */

/* The inner packet of a tunnel packet, `outer_len` bytes of outer IPv6 header (and extension
 * headers) after the Ethernet header: its length, IPv6 header included; 0 when it is not a
 * whole IPv6 packet within the frame. */
static __always_inline __u32 m6_decap_inner_len(void *ctx, const enum m6_hook hook, const struct ipv6hdr *inner,
						__u32 outer_len, void *data_end)
{
	if ((void *)(inner + 1) > data_end || inner->version != 6)
		return 0;
	__u32 inner_len = bpf_ntohs(inner->payload_len) + IPV6_HLEN;
	if (ETH_HLEN_ + outer_len + inner_len > m6_len(ctx, hook))
		return 0;
	return inner_len;
}

/* Take the `outer_len` bytes of outer headers off: 0 with *eth and *ip6 at the Ethernet header
 * and the inner IPv6 header, or the drop. Every packet pointer is void after the head moves:
 * they are derived again and checked (TC: after a pull, a no-op when the inner header was
 * linear before, as the callers' parse made it). */
static __always_inline int m6_decap_pop(void *ctx, const enum m6_hook hook, const struct m6_fwd *f, __u32 outer_len,
					struct ethhdr **eth, struct ipv6hdr **ip6)
{
	if (m6_close_room(ctx, hook, outer_len))
		return M6_DROP(f->drop_adjust_fail);
	m6_pull(ctx, hook, ETH_HLEN_ + IPV6_HLEN);
	void *data = m6_data(ctx, hook);
	*eth = data;
	*ip6 = data + ETH_HLEN_;
	if ((void *)(*ip6 + 1) > m6_data_end(ctx, hook))
		return M6_DROP(f->drop_adjust_fail);
	return 0;
}

#endif /* M6_LIB_FORWARD_H */
