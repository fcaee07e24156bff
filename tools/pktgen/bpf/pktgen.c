// SPDX-License-Identifier: GPL-2.0
// sdnfwd's packet generator: run with BPF_PROG_RUN in live-frames mode
// (BPF_F_TEST_XDP_LIVE_FRAMES), each run of the program stamps the frame
// (sequence number, CLOCK_MONOTONIC time, a source port chosen from the
// sequence number for N flows), fixes the L4 checksum incrementally and
// returns XDP_TX: the kernel sends the frame out of the interface. The
// template's layout comes from userspace in gen_map.
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;

struct gen_cfg {
	__u64 seq;       // next sequence number (shared by all runs)
	__u32 flows;     // source ports base_port .. base_port + flows - 1
	__u16 base_port; // host order
	__u16 l4_off;    // offset of the (inner) TCP/UDP header
	__u16 csum_off;  // offset of its checksum (0: none to fix)
	__u16 stamp_off; // offset of the 16-byte stamp (after the magic)
	__u32 dry;       // nonzero: drop the frame untouched (a probe of
	                 // whether the kernel allows live frames at all)
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_cfg);
} gen_map SEC(".maps");

static __always_inline __u16 bswap16(__u16 x) { return __builtin_bswap16(x); }

// One's-complement update of a checksum (network order) for a 16-bit word
// changing from `from` to `to` (both network order), RFC 1624 eq. 3.
static __always_inline __u16 csum_update(__u16 csum, __u16 from, __u16 to)
{
	__u32 s = (__u16)~csum;
	s += (__u16)~from;
	s += to;
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

SEC("xdp")
int sdnfwd_pktgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 k = 0;
	struct gen_cfg *c = bpf_map_lookup_elem(&gen_map, &k);
	if (!c)
		return XDP_ABORTED;
	if (c->dry)
		return XDP_DROP;
	__u64 seq = __sync_fetch_and_add(&c->seq, 1);
	__u64 now = bpf_ktime_get_ns();
	__u32 l4 = c->l4_off & 0x1ff;
	__u32 cs = c->csum_off & 0x1ff;
	__u32 st = c->stamp_off & 0x1ff;
	if (data + l4 + 2 > end || data + st + 16 > end)
		return XDP_ABORTED;
	__u16 *sport = data + l4;
	__u16 *stamp = data + st;
	__u16 old[9], neu[9];
	__u16 port = c->base_port + (c->flows > 1 ? (__u16)(seq % c->flows) : 0);
	old[0] = *sport;
	neu[0] = bswap16(port);
	*sport = neu[0];
	__u64 v[2] = { seq, now };
#pragma unroll
	for (int i = 0; i < 8; i++) {
		old[1 + i] = stamp[i];
		// Big-endian on the wire: word i of (seq, time).
		__u64 x = v[i / 4];
		neu[1 + i] = bswap16((__u16)(x >> (48 - 16 * (i % 4))));
		stamp[i] = neu[1 + i];
	}
	if (cs && data + cs + 2 <= end) {
		__u16 *csum = data + cs;
		__u16 c16 = *csum;
		if (c16 != 0) { // UDP without a checksum stays without
#pragma unroll
			for (int i = 0; i < 9; i++)
				c16 = csum_update(c16, old[i], neu[i]);
			*csum = c16 ? c16 : 0xffff;
		}
	}
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
