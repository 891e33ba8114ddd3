/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The mobile access gateway's maps (layouts and capacities in mip6_shared.h; the control plane
 * owns the prefixes, the MACs and the config, the data plane the limiters, the counters and the
 * next-hop cache; both open them by these names). Its own maps, apart from the LMA's. */
#ifndef M6_MAG_MAPS_H
#define M6_MAG_MAPS_H

#include <bpf/bpf_helpers.h>
#include "mip6_shared.h"

/* The Binding Update List by home network prefix (RFC 5213 §6.1): /64 -> node, LMA, expiry.
 * The uplink's one lookup (source /64) and the downlink's (inner destination /64). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIP6_MAG_MAX_BINDINGS);
	__type(key, struct mip6_mag_hnp_key);
	__type(value, struct mip6_mag_node);
} mip6_mag_hnp SEC(".maps");

/* MACs the control plane holds, and on which access link: a frame from any other is an
 * attach trigger. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MIP6_MAG_MAX_NODES);
	__type(key, struct mip6_mag_mac_key);
	__type(value, struct mip6_mag_mac);
} mip6_mag_macs SEC(".maps");

/* When each MAC was last punted (attach trigger, RS): LRU, so a spray of source MACs ages out
 * instead of filling it. Written by the data plane only. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MIP6_MAG_MAX_SEEN);
	__type(key, struct mip6_mag_mac_key);
	__type(value, struct mip6_mag_seen);
} mip6_mag_seen SEC(".maps");

/* The configuration: Proxy-CoA, shared link-local address and MAC, punt intervals (array of one). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_mag_config);
} mip6_mag_config SEC(".maps");

/* Per-CPU counters, indexed by enum mip6_mag_counter (names: MIP6_MAG_COUNTERS). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MIP6_MAG_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mip6_mag_counts SEC(".maps");

/* To the control plane: struct mip6_punt_record, kinds MIP6_PUNT_MH, _RS and _ATTACH. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MIP6_PUNT_RING_BYTES);
} mip6_mag_punt SEC(".maps");

/* Next-hop cache in front of bpf_fib_lookup for the LMA addresses: LMA -> egress, MACs. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MIP6_MAX_NEXTHOPS);
	__type(key, struct mip6_addr_key);
	__type(value, struct mip6_nexthop);
} mip6_mag_nh SEC(".maps");

/* The ICMPv6 errors this program originates (Packet Too Big, Parameter Problem), all CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mip6_token_bucket);
} mip6_mag_icmp SEC(".maps");

#endif /* M6_MAG_MAPS_H */
