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

#endif /* M6_LIB_RATELIMIT_H */
