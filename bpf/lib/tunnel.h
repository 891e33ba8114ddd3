/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * IPv6-in-IPv6 (RFC 2473) at a tunnel entry point: the Tunnel Encapsulation Limit of the
 * packet about to be tunneled (§4.1.1, §5.1) and the outer header of the encapsulation.
 * Shared by every tunnel entry point: the home agent, the LMA and the MAG (through forward.h)
 * and the mobile node's reverse tunnel (mip6_mn.bpf.c).
 */
#ifndef M6_LIB_TUNNEL_H
#define M6_LIB_TUNNEL_H

#include "ctx.h"

#define M6_OPT_PADN      1
#define M6_OPT_TEL       4  /* RFC 2473 §4.1.1: Tunnel Encapsulation Limit, length 1 */
#define M6_TEL_HLEN      8  /* the Destination Options header that carries ours */
#ifndef M6_TEL_MAX_HEADERS
#define M6_TEL_MAX_HEADERS 4 /* RFC 8200 §4.1: Hop-by-Hop, Destination, Routing, Destination: all
                              * a chain in the recommended order holds before anything else */
#endif
#ifndef M6_TEL_MAX_OPTS
#define M6_TEL_MAX_OPTS  8  /* options looked at in one Destination Options header */
#endif

#define M6_TEL_NONE      (-1) /* no Tunnel Encapsulation Limit option */
#define M6_TEL_MALFORMED (-2) /* an extension header runs past the packet */
#define M6_TEL_SPENT     (-3) /* m6_tel_next: a limit of 0, the packet may not be tunneled again */

/* RFC 2473 §4.1.1: a limit sits in a Destination Options header, reached through Hop-by-Hop
 * Options and Routing headers. A packet whose first next header is none of those (TCP, UDP,
 * ICMPv6, ...) carries none: this test is all it pays. */
static __always_inline int m6_may_carry_tel(__u8 nh)
{
	return nh == IPPROTO_DSTOPTS_ || nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_ROUTING_;
}

/*
 * RFC 2473 §5.1: the Tunnel Encapsulation Limit of the IPv6 packet of `len` bytes at frame
 * offset `off`, whose header's next header is `nh`: the limit (0..255), M6_TEL_NONE or
 * M6_TEL_MALFORMED. *ptr gets the offset of the limit octet from the start of the IPv6 header,
 * where a Parameter Problem points. Like Linux's ip6_tnl_parse_tlv_enc_lim: the first option of
 * type 4 and length 1 in a Destination Options header of the chain. The walk has fixed limits,
 * M6_TEL_MAX_HEADERS headers and M6_TEL_MAX_OPTS options in each (each more costs the verifier
 * thousands of steps): past them the packet counts as carrying none (a tunnel loop still ends,
 * the inner hop limit falls at every entry point). Bytes are loaded, not pointed at: TC may
 * hold them in page fragments, and the caller's packet pointers stay valid.
 */
static __always_inline int m6_tel_find(void *ctx, const enum m6_hook hook, __u32 off, __u32 len, __u8 nh, __u32 *ptr)
{
	__u32 pos = IPV6_HLEN; /* from the start of the IPv6 header */
	int i, j;

	for (i = 0; i < M6_TEL_MAX_HEADERS; i++) {
		if (!m6_may_carry_tel(nh))
			return M6_TEL_NONE;
		__u8 h[2];
		if (pos + 2 > len || m6_load_bytes(ctx, hook, off + pos, h, 2))
			return M6_TEL_MALFORMED;
		__u32 hlen = ((__u32)h[1] + 1) * 8;
		if (pos + hlen > len)
			return M6_TEL_MALFORMED;
		if (nh == IPPROTO_DSTOPTS_) {
			__u32 o = 2;
			/* RFC 8200 §4.2 TLVs; a limit (3 octets) cannot start in the last two. */
			for (j = 0; j < M6_TEL_MAX_OPTS && o + 3 <= hlen; j++) {
				__u8 t[3];
				if (m6_load_bytes(ctx, hook, off + pos + o, t, 3))
					return M6_TEL_MALFORMED;
				if (t[0] == M6_OPT_TEL && t[1] == 1) {
					*ptr = pos + o + 2;
					return t[2];
				}
				o += t[0] == 0 ? 1 : (__u32)t[1] + 2; /* Pad1 is one octet */
			}
		}
		nh = h[0];
		pos += hlen;
	}
	return M6_TEL_NONE;
}

/*
 * At a tunnel entry point (RFC 2473 §5.1): the limit our encapsulation of the packet carries,
 * the packet's less one (0..254), or M6_TEL_NONE; M6_TEL_SPENT when the packet's is 0, with *ptr
 * at it (m6_tel_find), or M6_TEL_MALFORMED. One test for a packet that cannot carry a limit.
 */
static __always_inline int m6_tel_next(void *ctx, const enum m6_hook hook, __u32 off, __u32 len, __u8 nh, __u32 *ptr)
{
	if (!m6_may_carry_tel(nh))
		return M6_TEL_NONE;
	int tel = m6_tel_find(ctx, hook, off, len, nh, ptr);
	if (tel == 0)
		return M6_TEL_SPENT;
	return tel > 0 ? tel - 1 : tel;
}

/* Bytes an encapsulation adds: the outer header, and our Destination Options header when the
 * packet carried a limit (`tel` >= 0, already decremented). */
static __always_inline __u32 m6_tunnel_overhead(int tel)
{
	return tel >= 0 ? IPV6_HLEN + M6_TEL_HLEN : IPV6_HLEN;
}

/* RFC 2473 §7.1: the tunnel MTU, a route's (or link's) `mtu` less the `overhead` of our
 * headers, never below 1280. */
static __always_inline __u32 m6_tunnel_mtu(__u32 mtu, __u32 overhead)
{
	return mtu > 1280 + overhead ? mtu - overhead : 1280;
}

/*
 * After m6_open_room(ctx, hook, m6_tunnel_overhead(tel), ...): write the outer header into the
 * room. `first_word`: the inner header's version, traffic class and flow label (copied out,
 * RFC 2473 §6.4); `inner_len`: the inner packet's length; `tel` >= 0: a Destination Options
 * header follows the outer header with a Tunnel Encapsulation Limit of that value (RFC 2473
 * §5.1: the received limit less one), padded to 8 octets with PadN as Linux's ip6_tnl does;
 * M6_TEL_NONE: next header 41 directly. The outer header, with *eth set to the Ethernet header
 * in front of it, or NULL when the frame is no longer readable. TC: a CHECKSUM_COMPLETE skb's
 * sum covers the new bytes.
 */
static __always_inline struct ipv6hdr *m6_tunnel_header(void *ctx, const enum m6_hook hook, struct ethhdr **eth,
							__u32 first_word, __u32 inner_len, __u8 hop_limit,
							const __u8 *src, const __u8 *dst, int tel)
{
	void *data = m6_data(ctx, hook);
	void *data_end = m6_data_end(ctx, hook);
	struct ipv6hdr *outer = data + ETH_HLEN_;
	if ((void *)(outer + 1) > data_end)
		return NULL;
	*eth = data;
	if (tel < 0) {
		ipv6_write(outer, first_word, inner_len, IPPROTO_IPV6_, hop_limit, src, dst);
		m6_csum_replaced(ctx, hook, 0, 0, (void *)outer, IPV6_HLEN);
		return outer;
	}
	__u8 *opt = (void *)(outer + 1);
	if ((void *)(opt + M6_TEL_HLEN) > data_end)
		return NULL;
	ipv6_write(outer, first_word, inner_len + M6_TEL_HLEN, IPPROTO_DSTOPTS_, hop_limit, src, dst);
	opt[0] = IPPROTO_IPV6_;
	opt[1] = 0; /* 8 octets */
	opt[2] = M6_OPT_TEL;
	opt[3] = 1;
	opt[4] = (__u8)tel;
	opt[5] = M6_OPT_PADN;
	opt[6] = 1;
	opt[7] = 0;
	m6_csum_replaced(ctx, hook, 0, 0, (void *)outer, IPV6_HLEN + M6_TEL_HLEN);
	return outer;
}

#endif /* M6_LIB_TUNNEL_H */
