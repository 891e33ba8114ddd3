/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One exit per program (the Cilium pattern). A program's functions do not count and
 * return XDP_* / TC_ACT_* themselves: they return one int that says both what happened
 * (an index into the program's counters map) and what the hook does with the packet,
 *
 *   M6_DROP(cnt)              < 0: drop; the drop reason is the counter `cnt`
 *   M6_OUT(cnt, act)          >= 0: count `cnt`, then `act` (XDP_* / TC_ACT_*, from
 *                             m6_act_pass(), m6_tx(), m6_redirect())
 *   M6_PASS(hook, cnt)        M6_OUT(cnt, m6_act_pass(hook))
 *
 * and the entry point ends with `return m6_exit(hook, ret, &counters_map)`, the only
 * place that counts an outcome and turns it into a verdict. Counters that are not an
 * outcome (every packet seen, a cache hit, ...) are counted on the way with m6_count().
 */
#ifndef M6_LIB_VERDICT_H
#define M6_LIB_VERDICT_H

#include "ctx.h"

#define M6_ACT_BITS 8 /* XDP_* and TC_ACT_* verdicts we return are 0..8, and M6_TC_NEXT (ctx.h) */

#define M6_DROP(cnt)       (-(int)(cnt) - 1)
#define M6_OUT(cnt, act)   ((int)((__u32)(cnt) << M6_ACT_BITS) | ((act) & ((1 << M6_ACT_BITS) - 1)))
#define M6_PASS(hook, cnt) M6_OUT(cnt, m6_act_pass(hook))

/* Add one to counter `idx` of a per-CPU array of __u64. */
static __always_inline void m6_count(void *counters, __u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline int m6_exit(const enum m6_hook hook, int ret, void *counters)
{
	if (ret < 0) {
		m6_count(counters, (__u32)(-(ret + 1)));
		return m6_act_drop(hook);
	}
	m6_count(counters, (__u32)ret >> M6_ACT_BITS);
	int act = ret & ((1 << M6_ACT_BITS) - 1);
	return hook == M6_TC && act == M6_TC_NEXT ? TC_ACT_UNSPEC : act;
}

#endif /* M6_LIB_VERDICT_H */
