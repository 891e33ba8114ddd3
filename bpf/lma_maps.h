/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The local mobility anchor's maps (layouts and capacities in mip6_shared.h; the control
 * plane owns every one but the counters, the limiters and the next-hop cache, and opens
 * them by these names). Its own maps, not the home agent's (design §3.5 item 1). */
#ifndef M6_LMA_MAPS_H
#define M6_LMA_MAPS_H

#include <bpf/bpf_helpers.h>
#include "mip6_shared.h"

/* Binding cache by home network prefix: /64 -> MAG, lifetime. Preallocated: the data plane's
 * cost per lookup stays flat at the 1M target and an insert never fails for memory while
 * a PBU is being answered (1M x (8 + 40 + overhead) is about 100 MB; resized by the loader). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIP6_LMA_MAX_BINDINGS);
	__type(key, struct mip6_lma_hnp_key);
	__type(value, struct mip6_lma_binding);
} mip6_lma_hnp SEC(".maps");

/* Per-CPU counters, indexed by enum mip6_lma_counter (names: MIP6_LMA_COUNTERS). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MIP6_LMA_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mip6_lma_counts SEC(".maps");

/* The configuration: LMA address, flags, rate limits, next-hop generation (array of one). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_lma_config);
} mip6_lma_config SEC(".maps");

/* Signaling to the control plane: struct mip6_punt_record, kind MIP6_PUNT_MH. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MIP6_PUNT_RING_BYTES);
} mip6_lma_punt SEC(".maps");

/* The global signaling token bucket (array of one, spin-locked). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_token_bucket);
} mip6_lma_tb SEC(".maps");

/* Signaling token buckets per MAG address (LRU, per CPU: LRU maps cannot hold a spin lock). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, MIP6_LMA_MAX_MAGS);
	__type(key, struct mip6_addr_key);
	__type(value, struct mip6_rate_state);
} mip6_lma_mag_tb SEC(".maps");

/* The ICMPv6 errors this program originates (Packet Too Big, Parameter Problem), all CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_token_bucket);
} mip6_lma_icmp SEC(".maps");

/* Next-hop cache in front of bpf_fib_lookup for the MAG addresses: MAG -> egress, MACs. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MIP6_MAX_NEXTHOPS);
	__type(key, struct mip6_addr_key);
	__type(value, struct mip6_nexthop);
} mip6_lma_nh SEC(".maps");

#endif /* M6_LMA_MAPS_H */
