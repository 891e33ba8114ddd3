/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A bounds-checked parse cursor, the extension-header walk, address compares and
 * checksum folding. One parse_<header>() per header, each returning a pointer or
 * NULL; callers never touch packet memory without one. */
#ifndef M6_LIB_PARSE_H
#define M6_LIB_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "mip6_shared.h" /* MIP6_MAX_EXT_HEADERS */

#define ETH_HLEN_         14 /* sizeof(struct ethhdr) */
#define IPV6_HLEN         40 /* sizeof(struct ipv6hdr) */
#define AF_INET6_         10

#define IPPROTO_HOPOPTS_  0
#define IPPROTO_TCP_      6
#define IPPROTO_UDP_      17
#define IPPROTO_IPV6_     41
#define IPPROTO_ROUTING_  43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_       51
#define IPPROTO_ICMPV6_   58
#define IPPROTO_NONE_     59
#define IPPROTO_DSTOPTS_  60
#define IPPROTO_MH_       135

#define ICMPV6_PKT_TOOBIG_ 2
#define ICMPV6_PARAMPROB_  4
#define ND_NS_            135
#define ND_NA_            136
#define ND_OPT_SLLA_      1
#define ND_OPT_TLLA_      2

struct cursor {
	void *pos;
	void *end;
};

/* Advance past `len` bytes, returning where they start, or NULL when the packet is shorter. */
static __always_inline void *cursor_take(struct cursor *c, __u32 len)
{
	void *p = c->pos;
	if (p + len > c->end)
		return NULL;
	c->pos = p + len;
	return p;
}

static __always_inline struct ethhdr *parse_ethhdr(struct cursor *c)
{
	return cursor_take(c, sizeof(struct ethhdr));
}

static __always_inline struct ipv6hdr *parse_ipv6hdr(struct cursor *c)
{
	struct ipv6hdr *ip6 = cursor_take(c, sizeof(struct ipv6hdr));
	if (ip6 && ip6->version != 6)
		return NULL;
	return ip6;
}

/* Hop-by-Hop, Destination Options, Routing (RFC 8200 §4) and AH (RFC 4302 §2) start alike. */
struct ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen; /* AH: in 4-octet units, not counting the first 2; the others: 8-octet units, not counting the first */
};

/* Headers the walk steps over to reach the upper-layer protocol. */
static __always_inline int is_skippable_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_DSTOPTS_ || nh == IPPROTO_ROUTING_ || nh == IPPROTO_AH_;
}

#define M6_WALK_TRUNCATED (-1) /* an extension header runs past the packet */
#define M6_WALK_TOO_LONG  (-2) /* more than MIP6_MAX_EXT_HEADERS of them */

/*
 * Walk the extension headers that follow a header whose next header is `nh`, at most
 * MIP6_MAX_EXT_HEADERS of them. Returns the upper-layer protocol with the cursor at its
 * header, or M6_WALK_TRUNCATED / M6_WALK_TOO_LONG. A Fragment header ends the walk:
 * IPPROTO_FRAGMENT_ is returned, the cursor is past it and *frag_next holds its next
 * header (-1 otherwise); what follows it is never parsed (only a first fragment has it).
 */
static __always_inline int m6_walk_ext(struct cursor *c, __u8 nh, int *frag_next)
{
	int i;

	*frag_next = -1;
	for (i = 0; i < MIP6_MAX_EXT_HEADERS; i++) {
		if (nh == IPPROTO_FRAGMENT_) {
			struct ext_hdr *f = cursor_take(c, 8);
			if (!f)
				return M6_WALK_TRUNCATED;
			*frag_next = f->nexthdr;
			return IPPROTO_FRAGMENT_;
		}
		if (!is_skippable_ext(nh))
			return nh;
		struct ext_hdr *h = cursor_take(c, sizeof(*h));
		if (!h)
			return M6_WALK_TRUNCATED;
		/* the 2 bytes just taken are part of the header's length */
		__u32 len = nh == IPPROTO_AH_ ? ((__u32)h->hdrlen + 2) * 4 : ((__u32)h->hdrlen + 1) * 8;
		nh = h->nexthdr;
		if (!cursor_take(c, len - sizeof(*h)))
			return M6_WALK_TRUNCATED;
	}
	return is_skippable_ext(nh) || nh == IPPROTO_FRAGMENT_ ? M6_WALK_TOO_LONG : nh;
}

static __always_inline int addr_eq(const __u8 *a, const __u8 *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return x[0] == y[0] && x[1] == y[1];
}

/* An IPv6 address on the stack: addr_copy/addr_eq move it as two 8-byte words, and the
 * verifier refuses a misaligned 8-byte stack access, so the buffer is 8-aligned. */
#define M6_ADDR(name) __u8 name[16] __attribute__((aligned(8)))

static __always_inline void addr_copy(__u8 *dst, const __u8 *src)
{
	__u64 *d = (__u64 *)dst;
	const __u64 *s = (const __u64 *)src;
	d[0] = s[0];
	d[1] = s[1];
}

static __always_inline int addr_is_unspecified(const __u8 *a)
{
	const __u64 *x = (const __u64 *)a;
	return x[0] == 0 && x[1] == 0;
}

static __always_inline int addr_is_multicast(const __u8 *a)
{
	return a[0] == 0xff;
}

static __always_inline int addr_is_link_local(const __u8 *a)
{
	return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

/* ff02::1:ffXX:XXXX for `target` (RFC 4291 §2.7.1). */
static __always_inline int addr_is_solicited_node_of(const __u8 *a, const __u8 *target)
{
	const __u32 *w = (const __u32 *)a;
	return w[0] == bpf_htonl(0xff020000) && w[1] == 0 && w[2] == bpf_htonl(1) &&
	       a[12] == 0xff && a[13] == target[13] && a[14] == target[14] && a[15] == target[15];
}

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The ICMPv6 pseudo-header (RFC 8200 §8.1) of `ip6` for an ICMPv6 message of `len` bytes,
 * unfolded; -1 if bpf_csum_diff refuses. Add the message's own sum and fold. */
static __always_inline __s64 icmp6_pseudo_sum(struct ipv6hdr *ip6, __u32 len)
{
	__s64 s = bpf_csum_diff(0, 0, (void *)&ip6->saddr, 32, 0);
	if (s < 0)
		return -1;
	return s + bpf_htonl(len) + bpf_htonl(IPPROTO_ICMPV6_);
}

static __always_inline void mac_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, ETH_ALEN);
}

/* Write an IPv6 header we originate (ICMPv6 errors, NAs, outer tunnel headers); `first_word`
 * is version, traffic class and flow label in network order (0x60000000: all zero). */
static __always_inline void ipv6_write(struct ipv6hdr *ip6, __u32 first_word, __u16 payload_len, __u8 nexthdr,
				       __u8 hop_limit, const __u8 *saddr, const __u8 *daddr)
{
	*(__u32 *)ip6 = first_word;
	ip6->payload_len = bpf_htons(payload_len);
	ip6->nexthdr = nexthdr;
	ip6->hop_limit = hop_limit;
	addr_copy(ip6->saddr.s6_addr, saddr);
	addr_copy(ip6->daddr.s6_addr, daddr);
}

#endif /* M6_LIB_PARSE_H */
