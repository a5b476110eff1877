/* Owns the kernel side of the map layout: the C structs of /work's kernel map contract
 * (docs/kernel-maps.md), mirrored one to one by kernel-bridge/layout.ts (a test reads
 * their sizes and offsets from the object's BTF and compares them with LAYOUT), plus the
 * loader's own structs (control word, per-generation config, counters, events).
 *
 * INVARIANT: every struct is packed by construction: no implicit padding, every field
 * naturally aligned. Multi-byte fields are little-endian (host) except the arrays marked
 * big-endian, which are LPM key bits (a prefix must be the high bits). */
#ifndef PORTCULLIS_H
#define PORTCULLIS_H

#define PC_ANY 0xffffffffu         /* uid/gid "any" in an identity key */
#define PC_NO_RULE 0xffffffffu     /* a verdict decided by no rule (the default) */
#define PC_NO_VERDICT 0xffffffffu  /* an event whose lookup missed (lowering bug): denied */
#define PC_UNIDENTIFIED 0xffffffffu /* pc_event.workload of a process no identity entry matched */
#define PC_NO_BLOCK 0xffffffffu    /* pc_row_val.protocol_block of a row that depends on uid or gid */
#define PC_VERDICT_ALLOW 1u
#define PC_VERDICT_DEFAULT 2u
#define PC_MAX_LEVELS 16           /* cgroup levels probed per call (pc_gen_config.levels); layout.ts MAX_CGROUP_LEVELS */
#define PC_MAX_CLASSES 8           /* identity classes per list, the class loop's bound; layout.ts MAX_CLASSES */
#define PC_MAX_RULES 16384         /* counter slots per generation; rule >= this counts in the last slot */
#define PC_COUNTER_SLOTS (PC_MAX_RULES + 1)

/* ---- the contract: one generation of policy ---- */

/* 1. process -> its workload's identity classes (HASH). The list is inline: `count`
 *    (1..PC_MAX_CLASSES) classes, the rest zero. Unidentified: pc_gen_config.unidentified. */
struct pc_ident_key { __u64 cgroup_id; __u32 uid; __u32 gid; };
struct pc_ident_val { __u32 order; __u32 count; __u32 classes[PC_MAX_CLASSES]; };

/* 2+3. (identity class, destination) -> row (LPM_TRIE per family, BPF_F_NO_PREALLOC): one
 *    entry per pair (s, c) of the tables, keyed by s and c's CIDR (prefixlen = 32 + the
 *    CIDR's prefix, so the class is matched whole). A miss: default_row[s] (ARRAY). */
struct pc_pair4_key { __u32 prefixlen; __u32 cls; __u8 addr[4]; /* network order */ };
struct pc_pair6_key { __u32 prefixlen; __u32 cls; __u8 addr[16]; /* network order */ };
struct pc_row_val { __u32 row;
                    __u32 protocol_block; /* every uid and gid of the row lead to this block
                                             (the uid and gid lookups are skipped), or PC_NO_BLOCK */ };

/* 4. row, uid, gid, protocol, port -> verdict (three LPM_TRIEs) */
struct pc_uid_key { __u32 prefixlen; __u32 row; __u8 uid[4]; /* big-endian */ };
struct pc_gid_key { __u32 prefixlen; __u32 block; __u8 gid[4]; /* big-endian */ };
struct pc_port_key { __u32 prefixlen; __u32 block; __u8 protocol; /* 6 tcp, 17 udp */
                     __u8 pad; /* 0 */ __u8 port[2]; /* big-endian */ };
struct pc_block_val { __u32 block; };
struct pc_verdict_ref { __u32 verdict; };

/* 5. verdict -> decision (ARRAY, key = the tables' verdict index) */
struct pc_verdict { __u32 flags; __u32 rule; };

/* ---- the loader's structs (not in the contract; kernel-bridge/loader.ts encodes them) ---- */

/* pc_control (ARRAY, 1 entry): the one word a swap flips. The program reads it once per
 * call and uses that value for every later lookup. */
struct pc_control { __u32 generation; /* 0 or 1 */ __u32 swaps; /* flips so far, for status */ };

/* pc_config (ARRAY, 2 entries, index = generation): what belongs to a generation besides
 * its maps. Written only while its generation is inactive and drained (see loader.ts). */
struct pc_gen_config {
	__u32 audit;                  /* 1: log every decision, allow all */
	__u32 level_count;            /* <= PC_MAX_LEVELS */
	__u32 levels[PC_MAX_LEVELS];  /* absolute cgroup depths to probe, in order */
	__u32 probe_mask;             /* PC_PROBE_* */
	__u32 unidentified_count;     /* 1..PC_MAX_CLASSES */
	__u32 unidentified[PC_MAX_CLASSES]; /* the classes of a process no identity entry matches */
};

/* pc_gen_config.probe_mask: which identity key shapes this generation has. Bit v for keys
 * with a cgroup id, bit 4 + v for cgroup id 0, where v = (uid is ANY) | (gid is ANY) << 1.
 * A probe of a shape with no entry would miss, so skipping it changes no decision. */
#define PC_PROBE_CGROUP(v) (1u << (v))
#define PC_PROBE_ANY_CGROUP(v) (1u << (4 + (v)))

/* pc_counters (PERCPU_ARRAY, 2 * PC_COUNTER_SLOTS, key = generation * PC_COUNTER_SLOTS + slot):
 * decisions per first deciding rule; slot PC_MAX_RULES holds default and unknown rules. */
struct pc_counter { __u64 allowed; __u64 denied; };

/* pc_events (RINGBUF): one per denied call, and one per call in audit mode. */
struct pc_event {
	__u64 cgroup_id;       /* the caller's own cgroup */
	__u64 time_ns;         /* bpf_ktime_get_ns (since boot) */
	__u32 pid;             /* tgid */
	__u32 uid;
	__u32 gid;
	__u32 workload;        /* the identity entry's order (manifest index), PC_UNIDENTIFIED */
	__u32 identity_class;  /* the class whose verdict decided */
	__u32 verdict;         /* the deciding verdict index, PC_NO_VERDICT when a lookup missed */
	__u32 rule;            /* its first rule, PC_NO_RULE for a default */
	__u32 generation;
	__u32 count;           /* classes looked up */
	__u32 verdicts[PC_MAX_CLASSES]; /* each class's verdict, in list order (PC_NO_VERDICT past count) */
	__u16 port;            /* host order */
	__u8 protocol;         /* 6 tcp, 17 udp */
	__u8 family;           /* 4 or 6; a v4-mapped destination is 4 */
	__u8 addr[16];         /* 4 or 16 bytes used, network order */
	__u8 allowed;          /* the policy's decision: 1 allow */
	__u8 returned;         /* what the program returned (1 in audit mode) */
	__u8 hook;             /* 0 connect4, 1 connect6, 2 sendmsg4, 3 sendmsg6 */
	__u8 pad[5];
	char comm[16];
};

#endif
