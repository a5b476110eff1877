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
	struct pc_pair4_key pair4_key;
	struct pc_pair6_key pair6_key;
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
INNER(pc_pair4_map, BPF_MAP_TYPE_LPM_TRIE, struct pc_pair4_key, struct pc_row_val, BPF_F_NO_PREALLOC);
INNER(pc_pair6_map, BPF_MAP_TYPE_LPM_TRIE, struct pc_pair6_key, struct pc_row_val, BPF_F_NO_PREALLOC);
INNER(pc_default_row_map, BPF_MAP_TYPE_ARRAY, __u32, struct pc_row_val, 0);
INNER(pc_uid_map, BPF_MAP_TYPE_LPM_TRIE, struct pc_uid_key, struct pc_block_val, BPF_F_NO_PREALLOC);
INNER(pc_gid_map, BPF_MAP_TYPE_LPM_TRIE, struct pc_gid_key, struct pc_block_val, BPF_F_NO_PREALLOC);
INNER(pc_port_map, BPF_MAP_TYPE_LPM_TRIE, struct pc_port_key, struct pc_verdict_ref, BPF_F_NO_PREALLOC);
INNER(pc_verdict_map, BPF_MAP_TYPE_ARRAY, __u32, struct pc_verdict, 0);

OUTER(pc_ident, pc_ident_map);
OUTER(pc_pairs4, pc_pair4_map);
OUTER(pc_pairs6, pc_pair6_map);
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
	__u32 uid;      /* the caller's */
	__u32 gid;
	__u32 gen;      /* the generation this call reads */
};

static __always_inline void put_be32(__u8 *out, __u32 value)
{
	out[0] = value >> 24;
	out[1] = value >> 16;
	out[2] = value >> 8;
	out[3] = value;
}

/* One class's verdict (steps 2-5). */
struct pc_class_result {
	__u32 verdict;  /* the tables' verdict index */
	__u32 flags;
	__u32 rule;
};

/* One generation's policy maps, taken from their outer slots once per call. */
struct pc_maps {
	void *pairs4;
	void *pairs6;
	void *default_rows;
	void *uids;
	void *gids;
	void *ports;
	void *verdicts;
};

/* The class loop's body: one class's verdict. Returns 1 with `out` filled, or 0 when a
 * lookup missed (the lowering guarantees hits: a miss is a bug, and denies). */
static __always_inline int class_verdict(const struct pc_request *req, struct pc_maps *m, __u32 cls, struct pc_class_result *out)
{
	/* 2+3. (class, destination) -> row: the longest of the CIDRs paired with the class
	 *      that holds the destination (a v4-mapped destination was turned into IPv4 by
	 *      the caller); none: the class's default row. */
	struct pc_row_val *row;
	if (req->family == 4) {
		struct pc_pair4_key key = { .prefixlen = 64, .cls = cls };
		__builtin_memcpy(key.addr, req->addr, 4);
		row = bpf_map_lookup_elem(m->pairs4, &key);
	} else {
		struct pc_pair6_key key = { .prefixlen = 160, .cls = cls };
		__builtin_memcpy(key.addr, req->addr, 16);
		row = bpf_map_lookup_elem(m->pairs6, &key);
	}
	if (!row)
		row = bpf_map_lookup_elem(m->default_rows, &cls);
	if (!row)
		return 0;

	/* 4. row + uid -> gid block; gid block + gid -> protocol block (skipped when the row
	 *    names its one protocol block); protocol block + protocol + port -> verdict. Each
	 *    an LPM over the value's bits, fixed fields whole. */
	__u32 block = row->protocol_block;
	if (block == PC_NO_BLOCK) {
		struct pc_uid_key uid_key = { .prefixlen = 64, .row = row->row };
		put_be32(uid_key.uid, req->uid);
		struct pc_block_val *gid_block = bpf_map_lookup_elem(m->uids, &uid_key);
		if (!gid_block)
			return 0;
		struct pc_gid_key gid_key = { .prefixlen = 64, .block = gid_block->block };
		put_be32(gid_key.gid, req->gid);
		struct pc_block_val *protocol_block = bpf_map_lookup_elem(m->gids, &gid_key);
		if (!protocol_block)
			return 0;
		block = protocol_block->block;
	}
	struct pc_port_key port_key = { .prefixlen = 64, .block = block, .protocol = req->protocol };
	port_key.port[0] = req->port >> 8;
	port_key.port[1] = req->port & 0xff;
	struct pc_verdict_ref *ref = bpf_map_lookup_elem(m->ports, &port_key);
	if (!ref)
		return 0;

	/* 5. verdict index -> flags and first rule. */
	__u32 index = ref->verdict;
	struct pc_verdict *verdict = bpf_map_lookup_elem(m->verdicts, &index);
	if (!verdict)
		return 0;
	out->verdict = index;
	out->flags = verdict->flags;
	out->rule = verdict->rule;
	return 1;
}

/* What the class loop decides, and what the decision event carries of it. */
struct pc_decision {
	__u32 identity_class;             /* the deciding class (the missing one after a miss) */
	__u32 verdict;                    /* the deciding verdict index, PC_NO_VERDICT after a miss */
	__u32 flags;                      /* its flags (0 after a miss: deny) */
	__u32 rule;                       /* its first rule, PC_NO_RULE */
	__u32 count;                      /* classes looked up */
	__u32 verdicts[PC_MAX_CLASSES];   /* each class's verdict index, PC_NO_VERDICT past count */
};

/* 2-6 for every class of `who`'s list (all of them, so that the event carries every
 * verdict): the first forbid (flags 0) decides, deny; else the first permit (flags 1),
 * allow; else the first class's default. A global function: the verifier checks it once,
 * on its own (inlined, every path through the identity probes would take it through the
 * loop again, past its limit). It takes the maps of generation `req->gen` from their
 * outer slots itself (array-of-maps lookups are inlined: a few instructions each). */
__attribute__((noinline)) int pc_decide_classes(const struct pc_request *req, const struct pc_ident_val *who, struct pc_decision *out)
{
	if (!req || !who || !out)
		return 0;
	out->identity_class = 0;
	out->verdict = PC_NO_VERDICT;
	out->flags = 0;
	out->rule = PC_NO_RULE;
	out->count = 0;
	for (int k = 0; k < PC_MAX_CLASSES; k++)
		out->verdicts[k] = PC_NO_VERDICT;
	__u32 count = who->count;
	if (count == 0 || count > PC_MAX_CLASSES)
		return 0; /* the lowering writes 1..PC_MAX_CLASSES: deny */
	__u32 gen = req->gen;
	struct pc_maps m = {
		.pairs4 = bpf_map_lookup_elem(&pc_pairs4, &gen),
		.pairs6 = bpf_map_lookup_elem(&pc_pairs6, &gen),
		.default_rows = bpf_map_lookup_elem(&pc_default_row, &gen),
		.uids = bpf_map_lookup_elem(&pc_uid_lpm, &gen),
		.gids = bpf_map_lookup_elem(&pc_gid_lpm, &gen),
		.ports = bpf_map_lookup_elem(&pc_port_lpm, &gen),
		.verdicts = bpf_map_lookup_elem(&pc_verdicts, &gen),
	};
	if (!m.pairs4 || !m.pairs6 || !m.default_rows || !m.uids || !m.gids || !m.ports || !m.verdicts)
		return 0; /* no generation installed: deny */

	/* rank of the verdict held: 0 the first class's, 1 a permit, 2 a forbid; only a
	 * higher rank replaces it, so the first of the highest rank decides. */
	int rank = -1;
	for (int i = 0; i < PC_MAX_CLASSES; i++) {
		if (i >= count)
			break;
		__u32 cls = who->classes[i];
		struct pc_class_result verdict = {};
		out->count = i + 1;
		if (!class_verdict(req, &m, cls, &verdict)) {
			/* a miss denies the call, whatever other classes say */
			out->identity_class = cls;
			out->verdict = PC_NO_VERDICT;
			out->flags = 0;
			out->rule = PC_NO_RULE;
			return 0;
		}
		out->verdicts[i] = verdict.verdict;
		__u32 kind = verdict.flags & (PC_VERDICT_ALLOW | PC_VERDICT_DEFAULT);
		int r = i == 0 ? 0 : -1;
		if (kind == PC_VERDICT_ALLOW)
			r = 1;
		else if (kind == 0)
			r = 2;
		if (r > rank) {
			rank = r;
			out->identity_class = cls;
			out->verdict = verdict.verdict;
			out->flags = verdict.flags;
			out->rule = verdict.rule;
		}
	}
	return 1;
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

	__u64 uid_gid = bpf_get_current_uid_gid();
	__u32 uid = (__u32)uid_gid;
	__u32 gid = uid_gid >> 32;
	req->uid = uid;
	req->gid = gid;
	req->gen = gen;
	struct pc_ident_val who = { .order = PC_UNIDENTIFIED };
	struct pc_decision decision = { .verdict = PC_NO_VERDICT, .rule = PC_NO_RULE };
	__u32 audit = 0;
	for (int k = 0; k < PC_MAX_CLASSES; k++)
		decision.verdicts[k] = PC_NO_VERDICT;

	if (!config || !ident)
		goto decided; /* no generation installed: deny (so does a missing map below) */
	audit = config->audit;

	/* 1. Calling process -> its workload's class list: for each configured cgroup level,
	 *    the ancestor's id with uid/gid exact or ANY; then the same with cgroup id 0. The
	 *    lowest `order` among all hits wins (first workload in policy-set order); no hit
	 *    is unidentified, whose list is in the generation's config. When the generation
	 *    has no key with a cgroup id (or none with cgroup id 0), those probes are skipped
	 *    (probe_mask): they would miss. The winner is kept as its order and key, not its
	 *    value: scalars the verifier need not track precisely (copying the list, or
	 *    keeping the value pointer, on every hit makes it explore too many paths); its
	 *    value is looked up once more after the probes. */
	__u32 best_order = PC_UNIDENTIFIED;
	struct pc_ident_key best_key = {};
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
				best_key = key;
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
			best_key = key;
		}
	}
	if (best_order != PC_UNIDENTIFIED) {
		struct pc_ident_val *best = bpf_map_lookup_elem(ident, &best_key);
		if (best)
			__builtin_memcpy(&who, best, sizeof(who));
		else
			who.count = 0; /* cannot happen (the map is never written once installed): deny */
	} else {
		who.count = config->unidentified_count;
		__builtin_memcpy(who.classes, config->unidentified, sizeof(who.classes));
	}

	/* 2-6. The class list -> one verdict (pc_decide_classes). */
	pc_decide_classes(req, &who, &decision);

decided:;
	__u32 rule = decision.rule;
	__u8 allowed = decision.flags & PC_VERDICT_ALLOW;
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
			e->workload = who.order;
			e->identity_class = decision.identity_class;
			e->verdict = decision.verdict;
			e->rule = rule;
			e->generation = gen;
			e->count = decision.count;
			__builtin_memcpy(e->verdicts, decision.verdicts, sizeof(decision.verdicts));
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
