/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMPv6 errors the data plane originates (RFC 4443): Packet Too Big when an IPv6 packet
 * does not fit a tunnel (RFC 2473 §6.3/§7, §3.2), Parameter Problem when its Tunnel
 * Encapsulation Limit is spent (RFC 2473 §5.1). The offending frame is turned into the error
 * for its sender, quoting as much of the packet as keeps the error within 1280 bytes (RFC 4443
 * §2.4(c)): at most M6_PTB_QUOTE bytes.
 *
 * The Ethernet addresses are swapped, so the frame goes back where it came from: the
 * caller sends it (the home agent out of the arrival interface; the mobile node, whose
 * own stack sent the packet, into its ingress, where it is addressed to our MAC).
 * (TC: an skb whose checksum the sender left to offload, CHECKSUM_PARTIAL, keeps that
 * state; only a veth peer's own packets are like that, and the peer trusts it.)
 */
#ifndef M6_LIB_PTB_H
#define M6_LIB_PTB_H

#include "ctx.h"

#ifndef M6_PTB_QUOTE
#define M6_PTB_QUOTE 1232
#endif
#define M6_PTB_ICMP_LEN  (8 + M6_PTB_QUOTE)
#define M6_PTB_FRAME_LEN (ETH_HLEN_ + IPV6_HLEN + M6_PTB_ICMP_LEN)

#define M6_PTB_NOT_TOO_BIG (-1) /* shorter than a quote: nothing done, the frame is untouched */
#define M6_PTB_FAILED      (-2) /* the kernel refused to resize it: drop */

/*
 * Turn the frame, Ethernet + an IPv6 packet of `ip_len` bytes, into the ICMPv6 error `type` /
 * `code` with `param` in its 32-bit field (the MTU, the pointer) from `src` to the packet's
 * source, quoting its first min(ip_len, M6_PTB_QUOTE) bytes. 0, or M6_PTB_FAILED.
 *
 * The checksum is summed over a message of fixed length, M6_PTB_ICMP_LEN: a shorter quote is
 * padded with zeros (which add nothing, RFC 1071) for the sum and trimmed off after it, so the
 * verifier sees three constant-size bpf_csum_diff calls, not one path per length.
 */
static __always_inline int m6_icmp6_error(void *ctx, const enum m6_hook hook, const __u8 *src, __u8 type, __u8 code,
					  __u32 param, __u32 ip_len)
{
	void *data = m6_data(ctx, hook);
	void *data_end = m6_data_end(ctx, hook);
	struct ethhdr *eth = data;
	struct ipv6hdr *orig = data + sizeof(*eth);
	__u32 quote = ip_len < M6_PTB_QUOTE ? ip_len : M6_PTB_QUOTE;
	if ((void *)(orig + 1) > data_end || quote < IPV6_HLEN || m6_len(ctx, hook) < ETH_HLEN_ + quote)
		return M6_PTB_FAILED;
	__u8 old_src_mac[ETH_ALEN], old_dst_mac[ETH_ALEN];
	M6_ADDR(saddr);
	M6_ADDR(daddr);
	mac_copy(old_src_mac, eth->h_source);
	mac_copy(old_dst_mac, eth->h_dest);
	addr_copy(saddr, src);
	addr_copy(daddr, orig->saddr.s6_addr);

	/* Ethernet + the quote, zero-padded to a full one (growing zeroes the new bytes), then
	 * room for the IPv6 + ICMPv6 headers. */
	if (quote < M6_PTB_QUOTE && m6_set_len(ctx, hook, ETH_HLEN_ + quote))
		return M6_PTB_FAILED;
	if (m6_set_len(ctx, hook, ETH_HLEN_ + M6_PTB_QUOTE) || m6_open_room(ctx, hook, IPV6_HLEN + 8, 0))
		return M6_PTB_FAILED;
	m6_pull(ctx, hook, M6_PTB_FRAME_LEN);

	/* Reload: the helpers above invalidate every packet pointer. */
	data = m6_data(ctx, hook);
	data_end = m6_data_end(ctx, hook);
	if (data + M6_PTB_FRAME_LEN > data_end)
		return M6_PTB_FAILED;
	eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);
	__u8 *icmp = (void *)(ip6 + 1);

	mac_copy(eth->h_dest, old_src_mac);
	mac_copy(eth->h_source, old_dst_mac);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	ipv6_write(ip6, bpf_htonl(0x60000000), 8 + quote, IPPROTO_ICMPV6_, 64, saddr, daddr);
	icmp[0] = type;
	icmp[1] = code;
	*(__u16 *)(icmp + 2) = 0;
	*(__u32 *)(icmp + 4) = bpf_htonl(param);

	/* Pseudo-header (the real length) + the message, in bpf_csum_diff's 512-byte steps. */
	__s64 s = icmp6_pseudo_sum(ip6, 8 + quote);
	if (s < 0)
		return M6_PTB_FAILED;
	__u64 sum = s;
	s = bpf_csum_diff(0, 0, (void *)icmp, 512, 0);
	if (s < 0)
		return M6_PTB_FAILED;
	sum += s;
	s = bpf_csum_diff(0, 0, (void *)icmp + 512, 512, 0);
	if (s < 0)
		return M6_PTB_FAILED;
	sum += s;
	s = bpf_csum_diff(0, 0, (void *)icmp + 1024, M6_PTB_ICMP_LEN - 1024, 0);
	if (s < 0)
		return M6_PTB_FAILED;
	sum += s;
	*(__u16 *)(icmp + 2) = csum_fold(sum);
	/* The padding goes. */
	if (quote < M6_PTB_QUOTE && m6_set_len(ctx, hook, ETH_HLEN_ + IPV6_HLEN + 8 + quote))
		return M6_PTB_FAILED;
	return 0;
}

/* RFC 2473 §7, RFC 4443 §3.2: `mtu` is what the tunnel carries. 0 when the frame is the Packet
 * Too Big; M6_PTB_NOT_TOO_BIG for a packet shorter than a quote (a tunnel MTU is at least
 * 1280 - 40 = 1240, so a genuine one never is). */
static __always_inline int m6_packet_too_big(void *ctx, const enum m6_hook hook, const __u8 *src, __u32 mtu)
{
	if (m6_len(ctx, hook) < ETH_HLEN_ + M6_PTB_QUOTE)
		return M6_PTB_NOT_TOO_BIG;
	return m6_icmp6_error(ctx, hook, src, ICMPV6_PKT_TOOBIG_, 0, mtu, M6_PTB_QUOTE);
}

/* RFC 2473 §5.1 (RFC 4443 §3.4, code 0, erroneous header field): the packet of `ip_len` bytes
 * may not be tunneled again; `pointer` is the offset of its limit octet. 0, or M6_PTB_FAILED. */
static __always_inline int m6_param_problem(void *ctx, const enum m6_hook hook, const __u8 *src, __u32 pointer,
					    __u32 ip_len)
{
	return m6_icmp6_error(ctx, hook, src, ICMPV6_PARAMPROB_, 0, pointer, ip_len);
}

#endif /* M6_LIB_PTB_H */
