/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* BPF-only helpers: a bounds-checked parse cursor, address compares and
 * checksum folding. One parse_<header>() per header, each returning a
 * pointer or NULL; callers never touch packet memory without one. */
#ifndef MIP6_PARSE_H
#define MIP6_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define IPPROTO_HOPOPTS_  0
#define IPPROTO_IPV6_     41
#define IPPROTO_ROUTING_  43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_ICMPV6_   58
#define IPPROTO_NONE_     59
#define IPPROTO_DSTOPTS_  60
#define IPPROTO_MH_       135

#define ICMPV6_PKT_TOOBIG_ 2
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

/* Hop-by-Hop, Destination Options and Routing headers share this shape (RFC 8200 §4). */
struct ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen; /* in 8-octet units, not counting the first 8 */
};

static __always_inline int is_skippable_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS_ || nh == IPPROTO_DSTOPTS_ || nh == IPPROTO_ROUTING_;
}

static __always_inline int addr_eq(const __u8 *a, const __u8 *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return x[0] == y[0] && x[1] == y[1];
}

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

static __always_inline void mac_copy(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, ETH_ALEN);
}

#endif /* MIP6_PARSE_H */
