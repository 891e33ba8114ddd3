/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What perf/bpf/mip6_bench.bpf.c shares with the benchmark target (Sources/Mip6Bench):
 * kept out of mip6_shared.h so nothing of the benchmarks reaches the shipped binary.
 * Same rules as mip6_shared.h: fixed-width types, padding written out, sizes asserted.
 */
#ifndef MIP6_BENCH_H
#define MIP6_BENCH_H

#include <linux/types.h>

/* ---- the live-frames generator (mip6-bench gen) ---- */
#define MIP6_MAP_GEN_CFG       "mip6_gen_cfg"
#define MIP6_MAP_GEN_COUNT     "mip6_gen_count"  /* per-CPU: [0] frames at the sink, [1] IPv6-in-IPv6, [2] bytes */
#define MIP6_GEN_HEAD          128
struct mip6_gen_cfg {
	__u32 ifindex;           /* where frames go (the home agent's peer interface) */
	__u32 _pad;
	__u8  head[MIP6_GEN_HEAD]; /* the template's first bytes, restored before every send */
};
_Static_assert(sizeof(struct mip6_gen_cfg) == 136, "mip6_gen_cfg size");

#endif /* MIP6_BENCH_H */
