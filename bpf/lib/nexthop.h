/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Route lookups: bpf_fib_lookup set up for one IPv6 packet, and a next-hop cache in
 * front of it (struct mip6_nexthop in an LRU hash keyed by destination, passed in).
 */
#ifndef M6_LIB_NEXTHOP_H
#define M6_LIB_NEXTHOP_H

#include "ctx.h"
#include "mip6_shared.h"

/* A lookup of `src` -> `dst` for a packet of `tot_len` bytes (0: not checked against the MTU). */
static __always_inline void m6_fib_init(struct bpf_fib_lookup *fib, __u32 ifindex, __u8 l4_protocol, __u16 tot_len,
					const __u8 *src, const __u8 *dst)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->family = AF_INET6_;
	fib->ifindex = ifindex;
	fib->l4_protocol = l4_protocol;
	fib->tot_len = tot_len;
	addr_copy((__u8 *)fib->ipv6_src, src);
	addr_copy((__u8 *)fib->ipv6_dst, dst);
}

/*
 * bpf_fib_lookup behind a cache: about three quarters of the per-packet cost of a
 * straightforward encapsulation is the IPv6 FIB lookup. An entry is used only while its
 * generation is `gen` (the control plane bumps it on every route, neighbour or link
 * event), it is younger than MIP6_NH_MAX_AGE_NS at `now`, and the packet is no longer
 * than one the FIB already accepted on that route.
 */
static __always_inline int m6_nh_fresh(const struct mip6_nexthop *nh, __u32 gen, __u64 now)
{
	return nh->gen == gen && now - nh->filled_ns < MIP6_NH_MAX_AGE_NS;
}

/* The cached answer into `fib`, as bpf_fib_lookup would have written it. */
static __always_inline void m6_nh_apply(const struct mip6_nexthop *nh, struct bpf_fib_lookup *fib)
{
	fib->ifindex = nh->ifindex;
	mac_copy(fib->smac, nh->smac);
	mac_copy(fib->dmac, nh->dmac);
}

/* The FIB's successful answer for a packet of `len` as a cache entry. `old` (may be
 * NULL): the entry it replaces; a longer packet the FIB accepted on the same route within
 * the age still fits. */
static __always_inline void m6_nh_make(struct mip6_nexthop *out, const struct mip6_nexthop *old, int old_fresh,
				       const struct bpf_fib_lookup *fib, __u32 gen, __u64 now, __u32 len)
{
	out->filled_ns = now;
	out->ifindex = fib->ifindex;
	out->gen = gen;
	out->max_len = len;
	if (old && old_fresh && old->ifindex == fib->ifindex && old->max_len > len)
		out->max_len = old->max_len;
	mac_copy(out->smac, fib->smac);
	mac_copy(out->dmac, fib->dmac);
}

/*
 * The cache as an LRU hash keyed by destination (passed in). Anything the cache cannot
 * answer goes to the FIB, whose answer refreshes the entry. Returns what bpf_fib_lookup
 * would; *hit tells whether the cache answered.
 */
static __always_inline int m6_fib_cached(void *ctx, void *cache, __u32 gen, __u64 now, struct bpf_fib_lookup *fib,
					 int *hit)
{
	struct mip6_nexthop *nh = bpf_map_lookup_elem(cache, fib->ipv6_dst);
	__u32 len = fib->tot_len;
	int fresh = nh && m6_nh_fresh(nh, gen, now);
	if (fresh && len <= nh->max_len) {
		m6_nh_apply(nh, fib);
		*hit = 1;
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	*hit = 0;
	M6_ADDR(dst); /* bpf_fib_lookup overwrites ipv6_dst with the gateway */
	addr_copy(dst, (__u8 *)fib->ipv6_dst);
	int rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		struct mip6_nexthop entry;
		m6_nh_make(&entry, nh, fresh, fib, gen, now, len);
		bpf_map_update_elem(cache, dst, &entry, BPF_ANY);
	}
	return rc;
}

#endif /* M6_LIB_NEXTHOP_H */
