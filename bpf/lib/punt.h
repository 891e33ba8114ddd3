/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Copy a packet into a control plane's ring buffer: a struct mip6_punt_hdr and the
 * packet from an IPv6 header on (mip6_shared.h). The ring is a parameter, so every
 * program punts to its own.
 */
#ifndef M6_LIB_PUNT_H
#define M6_LIB_PUNT_H

#include "ctx.h"
#include "verdict.h"
#include "mip6_shared.h"

#define M6_PUNT_FAILED    (-1) /* ring full (or the copy failed): nothing was punted */
#define M6_PUNT_OK        0
#define M6_PUNT_TRUNCATED 1    /* punted, only its first MIP6_PUNT_MAX bytes */

/* Fill a reserved record with `count` bytes from `off` (1 <= count <= room) and submit it. */
#define M6_PUNT_FILL(ctx, hook, r, off, count, room)                                           \
	({                                                                                     \
		int _rc = 0;                                                                   \
		__u32 _n = (count);                                                            \
		r->hdr.len = _n;                                                               \
		/* The bounds check next to the call: the verifier must see 1 <= n <= room. */ \
		barrier_var(_n);                                                               \
		if (_n < 1 || _n > (room) || m6_load_bytes(ctx, hook, off, r->data, _n) < 0) { \
			bpf_ringbuf_discard(r, 0);                                             \
			_rc = M6_PUNT_FAILED;                                                  \
		} else {                                                                       \
			bpf_ringbuf_submit(r, 0);                                              \
		}                                                                              \
		_rc;                                                                           \
	})

static __always_inline void m6_punt_header(void *ctx, const enum m6_hook hook, struct mip6_punt_hdr *h,
					   __u32 kind, const __u8 *src_mac, __u32 orig_len)
{
	h->tstamp_ns = bpf_ktime_get_ns();
	h->kind = kind;
	h->ifindex = m6_ifindex(ctx, hook);
	h->orig_len = orig_len;
	mac_copy(h->src_mac, src_mac);
	h->_pad[0] = h->_pad[1] = 0;
}

/*
 * Punt the `len` bytes at `off` (an IPv6 packet; len >= 1, within the frame). Two record
 * sizes (bpf_ringbuf_reserve takes a constant), so a ring holds thousands of signaling
 * packets of about 100 bytes rather than hundreds of full-size records.
 * Returns M6_PUNT_OK, M6_PUNT_TRUNCATED or M6_PUNT_FAILED.
 */
static __always_inline int m6_punt(void *ctx, const enum m6_hook hook, void *ring, __u32 kind,
				   __u32 off, __u32 len, const __u8 *src_mac)
{
	if (len <= MIP6_PUNT_SMALL) {
		struct mip6_punt_record *r =
			bpf_ringbuf_reserve(ring, sizeof(struct mip6_punt_hdr) + MIP6_PUNT_SMALL, 0);
		if (!r)
			return M6_PUNT_FAILED;
		m6_punt_header(ctx, hook, &r->hdr, kind, src_mac, len);
		return M6_PUNT_FILL(ctx, hook, r, off, len, MIP6_PUNT_SMALL);
	}
	struct mip6_punt_record *r = bpf_ringbuf_reserve(ring, sizeof(*r), 0);
	if (!r)
		return M6_PUNT_FAILED;
	m6_punt_header(ctx, hook, &r->hdr, kind, src_mac, len);
	int truncated = len > MIP6_PUNT_MAX;
	if (truncated)
		len = MIP6_PUNT_MAX;
	int rc = M6_PUNT_FILL(ctx, hook, r, off, len, MIP6_PUNT_MAX);
	return rc == M6_PUNT_OK && truncated ? M6_PUNT_TRUNCATED : rc;
}

/*
 * Punt only the head of the packet of `orig_len` bytes at `off`: its first min(orig_len,
 * MIP6_PUNT_SMALL) bytes in a small record (orig_len >= 1, within the frame). For records whose
 * header is the message (the MAG's attach trigger: who, on which link) and whose bytes only
 * help. Returns M6_PUNT_OK or M6_PUNT_FAILED.
 */
static __always_inline int m6_punt_head(void *ctx, const enum m6_hook hook, void *ring, __u32 kind,
					__u32 off, __u32 orig_len, const __u8 *src_mac)
{
	struct mip6_punt_record *r = bpf_ringbuf_reserve(ring, sizeof(struct mip6_punt_hdr) + MIP6_PUNT_SMALL, 0);
	if (!r)
		return M6_PUNT_FAILED;
	m6_punt_header(ctx, hook, &r->hdr, kind, src_mac, orig_len);
	return M6_PUNT_FILL(ctx, hook, r, off, orig_len < MIP6_PUNT_SMALL ? orig_len : MIP6_PUNT_SMALL, MIP6_PUNT_SMALL);
}

/*
 * A Mobility Header the kernel must not see (it has no Mobile IPv6; it would discard the packet
 * and answer Parameter Problem): the `len` bytes of its IPv6 packet at `off` to `ring`, and the
 * packet dropped. The outcome: M6_DROP(`punted`), or M6_DROP(`ring_full`) when nothing could
 * be punted; a record cut to MIP6_PUNT_MAX bytes also counts `truncated` (in `counters`).
 */
static __always_inline int m6_punt_mh(void *ctx, const enum m6_hook hook, void *ring, __u32 off, __u32 len,
				      const __u8 *src_mac, void *counters, __u32 punted, __u32 ring_full,
				      __u32 truncated)
{
	int rc = m6_punt(ctx, hook, ring, MIP6_PUNT_MH, off, len, src_mac);
	if (rc < 0)
		return M6_DROP(ring_full);
	if (rc == M6_PUNT_TRUNCATED)
		m6_count(counters, truncated);
	return M6_DROP(punted);
}

#endif /* M6_LIB_PUNT_H */
