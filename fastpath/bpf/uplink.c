// SPDX-License-Identifier: GPL-2.0
// sdnfwd's XDP program for the uplink: VXLAN to this node's VTEP goes to
// the AF_XDP socket of the receive queue; everything else (ARP, the host's
// own traffic, VXLAN for other addresses) continues to the kernel, so the
// node stays reachable while the forwarder runs. Self-contained (no
// libbpf headers): built by fastpath's build.rs with clang -target bpf.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

// Filled by sdnfwd before the program is attached: the VTEP address and
// UDP port, both in network byte order.
struct sdnfwd_cfg {
	__u32 vtep_ip;
	__u16 udp_port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sdnfwd_cfg);
} cfg_map SEC(".maps");

SEC("xdp")
int sdnfwd_uplink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;
	struct sdnfwd_cfg *c;
	__u32 k = 0;

	if ((void *)(eth + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return XDP_PASS;
	if (ip->frag_off & __builtin_bswap16(0x3fff))
		return XDP_PASS;
	c = bpf_map_lookup_elem(&cfg_map, &k);
	if (!c || ip->daddr != c->vtep_ip)
		return XDP_PASS;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end || udp->dest != c->udp_port)
		return XDP_PASS;
	return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
