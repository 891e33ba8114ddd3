/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The mobile node's maps (layouts in mip6_shared.h; the control plane owns the config and
 * opens them by these names). */
#ifndef M6_MN_MAPS_H
#define M6_MN_MAPS_H

#include <bpf/bpf_helpers.h>
#include "mip6_shared.h"

/* The configuration: home address, home agent, care-of addresses, flags (array of one). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_mn_config);
} mip6_mn_config SEC(".maps");

/* Per-CPU counters, indexed by enum mip6_mn_counter (names: MIP6_MN_COUNTERS). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MIP6_MN_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mip6_mn_counts SEC(".maps");

/* Mobility Headers from the home agent to the control plane: struct mip6_punt_record. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MIP6_PUNT_RING_BYTES);
} mip6_mn_punt SEC(".maps");

#endif /* M6_MN_MAPS_H */
