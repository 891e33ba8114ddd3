/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Token buckets in nanoseconds of credit: an event costs `cost`, a bucket holds `burst`. */
#ifndef M6_LIB_RATELIMIT_H
#define M6_LIB_RATELIMIT_H

#include <bpf/bpf_helpers.h>
#include "mip6_shared.h"

/* Refill with the time elapsed, spend `cost` if there is that much; 1 if spent. */
static __always_inline int m6_rate_take(__u64 *credit_ns, __u64 *last_ns, __u64 now, __u64 cost, __u64 burst)
{
	__u64 credit = *credit_ns + (now - *last_ns);
	if (credit > burst || now < *last_ns)
		credit = burst;
	*last_ns = now;
	if (credit < cost) {
		*credit_ns = credit;
		return 0;
	}
	*credit_ns = credit - cost;
	return 1;
}

/* The same on a bucket shared by all CPUs. */
static __always_inline int m6_bucket_take(struct mip6_token_bucket *b, __u64 now, __u64 cost, __u64 burst)
{
	bpf_spin_lock(&b->lock);
	int ok = m6_rate_take(&b->credit_ns, &b->last_ns, now, cost, burst);
	bpf_spin_unlock(&b->lock);
	return ok;
}

/* The bucket of an array of one struct mip6_token_bucket (`map`); 1 when the event may go, or
 * when there is no bucket. */
static __always_inline int m6_global_take(void *map, __u64 now, __u64 cost, __u64 burst)
{
	__u32 zero = 0;
	struct mip6_token_bucket *b = bpf_map_lookup_elem(map, &zero);
	return !b || m6_bucket_take(b, now, cost, burst);
}

/* The bucket of `key` in an LRU per-CPU hash of struct mip6_rate_state (`map`, one per source:
 * LRU maps cannot hold a spin lock): a new key starts full and evicts the least recently seen
 * one. 1 when the event may go (also when the map would not keep the key). */
static __always_inline int m6_keyed_take(void *map, const void *key, __u64 now, __u64 cost, __u64 burst)
{
	struct mip6_rate_state *b = bpf_map_lookup_elem(map, key);
	if (!b) {
		struct mip6_rate_state fresh = { .credit_ns = burst, .last_ns = now };
		bpf_map_update_elem(map, key, &fresh, BPF_NOEXIST);
		b = bpf_map_lookup_elem(map, key);
	}
	return !b || m6_rate_take(&b->credit_ns, &b->last_ns, now, cost, burst);
}

/* RFC 4443 §2.4(f): a node MUST limit the rate of the ICMPv6 errors it originates. One bucket
 * (`map`, an array of one) for every error, source and CPU of a program; 1 when this one may go.
 * No bucket: none goes. */
static __always_inline int m6_icmp_error_allowed(void *map, __u64 now)
{
	__u32 zero = 0;
	struct mip6_token_bucket *tb = bpf_map_lookup_elem(map, &zero);
	const __u64 cost = 1000000000ULL / MIP6_ICMP_ERRORS_PER_S;
	return tb && m6_bucket_take(tb, now, cost, cost * MIP6_ICMP_ERRORS_BURST);
}

#endif /* M6_LIB_RATELIMIT_H */
