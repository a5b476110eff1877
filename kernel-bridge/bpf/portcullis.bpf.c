/* Owns the datapath: the cgroup/connect4, connect6, sendmsg4 and sendmsg6 programs that
 * decide a connect() or an unconnected sendto() from the active generation of policy
 * maps (portcullis.h, docs/kernel-maps.md). A denied call returns 0, which the kernel
 * turns into EPERM for the caller; an allowed one returns 1 (the verifier accepts
 * nothing else).
 *
 * INVARIANT: the control word (pc_control.generation) is read exactly once per call and
 * every map of the decision is taken from that generation's slot, so one call sees one
 * whole generation. The loader never writes into a generation's maps once they are in an
 * outer slot: it creates fresh maps, fills them while no program can see them, waits for
 * every program that may still hold the inactive slot to finish, installs them, flips. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "portcullis.h"

char LICENSE[] SEC("license") = "GPL";

/* Keeps every contract struct complete in the object's BTF (inner map templates alone
 * would leave their key/value structs as forward declarations). libbpf skips this
 * section; the layout test reads it. */
struct pc_layout {
	struct pc_ident_key ident_key;
	struct pc_ident_val ident_val;
	struct pc_dst4_key dst4_key;
	struct pc_dst6_key dst6_key;
	struct pc_class_val class_val;
	struct pc_pair_key pair_key;
	struct pc_row_val row_val;
	struct pc_uid_key uid_key;
	struct pc_gid_key gid_key;
	struct pc_port_key port_key;
	struct pc_block_val block_val;
	struct pc_verdict_ref verdict_ref;
	struct pc_verdict verdict;
	struct pc_event event;
};
struct pc_layout pc_layout SEC(".pc_layout") __attribute__((used));

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17

/* The inner map templates. Their max_entries are set by the loader before load (one
 * capacity per map, kept for the lifetime of the pinned instance); every generation's
 * maps are created with the same definition. */
#define INNER(name, map_type, k, v, flags)         \
	struct name {                                  \
		__uint(type, map_type);                    \
		__uint(max_entries, 1);                    \
		__uint(map_flags, flags);                  \
		__type(key, k);                            \
		__type(value, v);                          \
	}
#define OUTER(name, inner)                         \
	struct {                                       \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);  \
		__uint(max_entries, 2);                    \
		__type(key, __u32);                        \
		__array(values, struct inner);             \
	} name SEC(".maps")

INNER(pc_ident_map, BPF_MAP_TYPE_HASH, struct pc_ident_key, struct pc_ident_val, BPF_F_NO_PREALLOC);
INNER(pc_dst4_map, BPF_MAP_TYPE_LPM_TRIE, struct pc_dst4_key, struct pc_class_val, BPF_F_NO_PREALLOC);
INNER(pc_dst6_map, BPF_MAP_TYPE_LPM_TRIE, struct pc_dst6_key, struct pc_class_val, BPF_F_NO_PREALLOC);
INNER(pc_pair_map, BPF_MAP_TYPE_HASH, struct pc_pair_key, struct pc_row_val, BPF_F_NO_PREALLOC);
INNER(pc_default_row_map, BPF_MAP_TYPE_ARRAY, __u32, struct pc_row_val, 0);
INNER(pc_uid_map, BPF_MAP_TYPE_LPM_TRIE, struct pc_uid_key, struct pc_block_val, BPF_F_NO_PREALLOC);
INNER(pc_gid_map, BPF_MAP_TYPE_LPM_TRIE, struct pc_gid_key, struct pc_block_val, BPF_F_NO_PREALLOC);
INNER(pc_port_map, BPF_MAP_TYPE_LPM_TRIE, struct pc_port_key, struct pc_verdict_ref, BPF_F_NO_PREALLOC);
INNER(pc_verdict_map, BPF_MAP_TYPE_ARRAY, __u32, struct pc_verdict, 0);

OUTER(pc_ident, pc_ident_map);
OUTER(pc_dst4, pc_dst4_map);
OUTER(pc_dst6, pc_dst6_map);
OUTER(pc_pairs, pc_pair_map);
OUTER(pc_default_row, pc_default_row_map);
OUTER(pc_uid_lpm, pc_uid_map);
OUTER(pc_gid_lpm, pc_gid_map);
OUTER(pc_port_lpm, pc_port_map);
OUTER(pc_verdicts, pc_verdict_map);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pc_control);
} pc_control SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct pc_gen_config);
} pc_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * PC_COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, struct pc_counter);
} pc_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} pc_events SEC(".maps");

struct pc_request {
	__u8 family;    /* 4 or 6 */
	__u8 protocol;
	__u16 port;     /* host order */
	__u8 addr[16];  /* network order */
};

static __always_inline void put_be32(__u8 *out, __u32 value)
{
	out[0] = value >> 24;
	out[1] = value >> 16;
	out[2] = value >> 8;
	out[3] = value;
}

static __always_inline int decide(struct pc_request *req, __u8 hook)
{
	if (req->protocol != IPPROTO_TCP_ && req->protocol != IPPROTO_UDP_)
		return 1; /* the policy language governs tcp and udp only */

	/* 0. The active generation, read once. */
	__u32 zero = 0;
	struct pc_control *control = bpf_map_lookup_elem(&pc_control, &zero);
	if (!control)
		return 0;
	__u32 gen = *(volatile __u32 *)&control->generation & 1;
	struct pc_gen_config *config = bpf_map_lookup_elem(&pc_config, &gen);
	void *ident = bpf_map_lookup_elem(&pc_ident, &gen);
	void *dst4 = bpf_map_lookup_elem(&pc_dst4, &gen);
	void *dst6 = bpf_map_lookup_elem(&pc_dst6, &gen);
	void *pairs = bpf_map_lookup_elem(&pc_pairs, &gen);
	void *default_rows = bpf_map_lookup_elem(&pc_default_row, &gen);
	void *uids = bpf_map_lookup_elem(&pc_uid_lpm, &gen);
	void *gids = bpf_map_lookup_elem(&pc_gid_lpm, &gen);
	void *ports = bpf_map_lookup_elem(&pc_port_lpm, &gen);
	void *verdicts = bpf_map_lookup_elem(&pc_verdicts, &gen);

	__u64 uid_gid = bpf_get_current_uid_gid();
	__u32 uid = (__u32)uid_gid;
	__u32 gid = uid_gid >> 32;
	__u32 identity_class = 0;
	__u32 verdict_index = PC_NO_VERDICT;
	__u32 flags = 0;
	__u32 rule = PC_NO_RULE;
	__u32 audit = 0;

	if (!config || !ident || !dst4 || !dst6 || !pairs || !default_rows || !uids || !gids || !ports || !verdicts)
		goto decided; /* no generation installed: deny */
	audit = config->audit;

	/* 1. Calling process -> identity class: for each configured cgroup level, the
	 *    ancestor's id with uid/gid exact or ANY; then the same with cgroup id 0. The
	 *    lowest `order` among all hits wins (first workload in policy-set order); no hit
	 *    is class 0, unidentified. When the generation has no key with a cgroup id (or
	 *    none with cgroup id 0), those probes are skipped (probe_mask): they would miss. */
	__u32 best_order = 0xffffffffu;
	__u32 level_count = config->level_count;
	__u32 mask = config->probe_mask;
	for (int v = 0; v < 4; v++) {
		if (!(mask & PC_PROBE_CGROUP(v)))
			continue;
		struct pc_ident_key key = { .uid = (v & 1) ? PC_ANY : uid, .gid = (v & 2) ? PC_ANY : gid };
		for (int i = 0; i < PC_MAX_LEVELS; i++) {
			if (i >= level_count)
				break;
			key.cgroup_id = bpf_get_current_ancestor_cgroup_id(config->levels[i]);
			struct pc_ident_val *hit = key.cgroup_id ? bpf_map_lookup_elem(ident, &key) : 0;
			if (hit && hit->order < best_order) {
				best_order = hit->order;
				identity_class = hit->identity_class;
			}
		}
	}
	for (int v = 0; v < 4; v++) {
		if (!(mask & PC_PROBE_ANY_CGROUP(v)))
			continue;
		struct pc_ident_key key = { .cgroup_id = 0, .uid = (v & 1) ? PC_ANY : uid, .gid = (v & 2) ? PC_ANY : gid };
		struct pc_ident_val *hit = bpf_map_lookup_elem(ident, &key);
		if (hit && hit->order < best_order) {
			best_order = hit->order;
			identity_class = hit->identity_class;
		}
	}

	/* 2. Destination -> destination class: longest prefix in dst4 or dst6 (a v4-mapped
	 *    destination was turned into IPv4 by the caller); no hit is class 0. */
	__u32 destination_class = 0;
	struct pc_class_val *cls;
	if (req->family == 4) {
		struct pc_dst4_key key = { .prefixlen = 32 };
		__builtin_memcpy(key.addr, req->addr, 4);
		cls = bpf_map_lookup_elem(dst4, &key);
	} else {
		struct pc_dst6_key key = { .prefixlen = 128 };
		__builtin_memcpy(key.addr, req->addr, 16);
		cls = bpf_map_lookup_elem(dst6, &key);
	}
	if (cls)
		destination_class = cls->cls;

	/* 3. (identity class, destination class) -> row; a pair no rule distinguishes uses
	 *    the identity class's default row. */
	struct pc_pair_key pair = { .identity_class = identity_class, .destination_class = destination_class };
	struct pc_row_val *row = bpf_map_lookup_elem(pairs, &pair);
	if (!row)
		row = bpf_map_lookup_elem(default_rows, &identity_class);
	if (!row)
		goto decided;

	/* 4. row + uid -> gid block; gid block + gid -> protocol block; protocol block +
	 *    protocol + port -> verdict. Each an LPM over the value's bits, fixed fields whole. */
	struct pc_uid_key uid_key = { .prefixlen = 64, .row = row->row };
	put_be32(uid_key.uid, uid);
	struct pc_block_val *gid_block = bpf_map_lookup_elem(uids, &uid_key);
	if (!gid_block)
		goto decided;
	struct pc_gid_key gid_key = { .prefixlen = 64, .block = gid_block->block };
	put_be32(gid_key.gid, gid);
	struct pc_block_val *protocol_block = bpf_map_lookup_elem(gids, &gid_key);
	if (!protocol_block)
		goto decided;
	struct pc_port_key port_key = { .prefixlen = 64, .block = protocol_block->block, .protocol = req->protocol };
	port_key.port[0] = req->port >> 8;
	port_key.port[1] = req->port & 0xff;
	struct pc_verdict_ref *ref = bpf_map_lookup_elem(ports, &port_key);
	if (!ref)
		goto decided;

	/* 5. verdict -> decision (flags, first deciding rule). */
	__u32 index = ref->verdict;
	struct pc_verdict *verdict = bpf_map_lookup_elem(verdicts, &index);
	if (!verdict)
		goto decided;
	verdict_index = index;
	flags = verdict->flags;
	rule = verdict->rule;

decided:;
	__u8 allowed = flags & PC_VERDICT_ALLOW;
	__u8 returned = allowed || audit ? 1 : 0;

	__u32 slot = rule < PC_MAX_RULES ? rule : PC_MAX_RULES;
	__u32 counter_key = gen * PC_COUNTER_SLOTS + slot;
	struct pc_counter *counter = bpf_map_lookup_elem(&pc_counters, &counter_key);
	if (counter) {
		if (allowed)
			counter->allowed++;
		else
			counter->denied++;
	}

	if (!allowed || audit) {
		struct pc_event *e = bpf_ringbuf_reserve(&pc_events, sizeof(*e), 0);
		if (e) {
			e->cgroup_id = bpf_get_current_cgroup_id();
			e->time_ns = bpf_ktime_get_ns();
			e->pid = bpf_get_current_pid_tgid() >> 32;
			e->uid = uid;
			e->gid = gid;
			e->identity_class = identity_class;
			e->verdict = verdict_index;
			e->rule = rule;
			e->generation = gen;
			e->port = req->port;
			e->protocol = req->protocol;
			e->family = req->family;
			__builtin_memcpy(e->addr, req->addr, 16);
			e->allowed = allowed;
			e->returned = returned;
			e->hook = hook;
			__builtin_memset(e->pad, 0, sizeof(e->pad));
			bpf_get_current_comm(e->comm, sizeof(e->comm));
			bpf_ringbuf_submit(e, 0);
		}
	}
	return returned;
}

static __always_inline void request4(struct pc_request *req, struct bpf_sock_addr *ctx)
{
	__u32 ip = ctx->user_ip4; /* network order */
	req->family = 4;
	__builtin_memcpy(req->addr, &ip, 4);
}

/* A v4-mapped destination (::ffff:a.b.c.d) is decided as IPv4. */
static __always_inline void request6(struct pc_request *req, struct bpf_sock_addr *ctx)
{
	__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
	if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
		req->family = 4;
		__builtin_memcpy(req->addr, &w3, 4);
		return;
	}
	req->family = 6;
	__builtin_memcpy(req->addr, &w0, 4);
	__builtin_memcpy(req->addr + 4, &w1, 4);
	__builtin_memcpy(req->addr + 8, &w2, 4);
	__builtin_memcpy(req->addr + 12, &w3, 4);
}

static __always_inline int run(struct bpf_sock_addr *ctx, int v6, __u8 hook)
{
	struct pc_request req = {};
	req.protocol = ctx->protocol;
	req.port = bpf_ntohs((__u16)ctx->user_port);
	if (v6)
		request6(&req, ctx);
	else
		request4(&req, ctx);
	return decide(&req, hook);
}

SEC("cgroup/connect4")
int pc_connect4(struct bpf_sock_addr *ctx) { return run(ctx, 0, 0); }

SEC("cgroup/connect6")
int pc_connect6(struct bpf_sock_addr *ctx) { return run(ctx, 1, 1); }

SEC("cgroup/sendmsg4")
int pc_sendmsg4(struct bpf_sock_addr *ctx) { return run(ctx, 0, 2); }

SEC("cgroup/sendmsg6")
int pc_sendmsg6(struct bpf_sock_addr *ctx) { return run(ctx, 1, 3); }
