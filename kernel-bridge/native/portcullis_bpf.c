/* Owns the native boundary: a thin N-API addon over Debian's libbpf (no hand-written bpf(2)
 * ABI). Every function maps to one libbpf call or a tight C loop over one (batch map
 * updates, ring buffer draining); policy logic lives in TypeScript (kernel-bridge/loader.ts).
 * Errors are thrown as JS Errors whose message is "<what>: <strerror>" and whose `errno`
 * property is the positive errno, so the loader can turn them into one-line diagnostics. */
#define NAPI_VERSION 8
#include <node_api.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <linux/membarrier.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CHECK(call)                                                     \
	do {                                                                \
		if ((call) != napi_ok) {                                        \
			napi_throw_error(env, NULL, "portcullis_bpf: N-API call failed"); \
			return NULL;                                                \
		}                                                               \
	} while (0)

static napi_value throw_errno(napi_env env, const char *what, int err)
{
	char message[512];
	snprintf(message, sizeof(message), "%s: %s", what, strerror(err));
	napi_value msg, error, code;
	napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
	napi_create_error(env, NULL, msg, &error);
	napi_create_int32(env, err, &code);
	napi_set_named_property(env, error, "errno", code);
	napi_throw(env, error);
	return NULL;
}

static int arg_i64(napi_env env, napi_value v, int64_t *out) { return napi_get_value_int64(env, v, out) == napi_ok; }

static int arg_string(napi_env env, napi_value v, char *out, size_t size)
{
	size_t len;
	return napi_get_value_string_utf8(env, v, out, size, &len) == napi_ok;
}

static int arg_bytes(napi_env env, napi_value v, void **data, size_t *len)
{
	napi_typedarray_type type;
	napi_value buffer;
	size_t offset;
	if (napi_get_typedarray_info(env, v, &type, len, data, &buffer, &offset) != napi_ok || type != napi_uint8_array) return 0;
	return 1;
}

static napi_value num(napi_env env, double value)
{
	napi_value out;
	napi_create_double(env, value, &out);
	return out;
}

static napi_value bytes_copy(napi_env env, const void *data, size_t len)
{
	napi_value out;
	void *dst;
	napi_create_buffer_copy(env, len, data, &dst, &out);
	return out;
}

#define ARGS(n)                                                         \
	size_t argc = n;                                                    \
	napi_value argv[n];                                                 \
	CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));        \
	if (argc < n) {                                                     \
		napi_throw_type_error(env, NULL, "portcullis_bpf: missing arguments"); \
		return NULL;                                                    \
	}

/* loadObject(objectPath, pinDir, capacities: {mapName: maxEntries}) — opens the BPF object,
 * sets each inner map template's max_entries from `capacities` (keyed by outer map name),
 * loads it (the verifier runs here), pins every map at pinDir/<map> and every program at
 * pinDir/<program>, then closes it: the pins keep everything alive. */
static napi_value load_object(napi_env env, napi_callback_info info)
{
	ARGS(3);
	char path[4096], pin_dir[4096];
	if (!arg_string(env, argv[0], path, sizeof(path)) || !arg_string(env, argv[1], pin_dir, sizeof(pin_dir))) {
		napi_throw_type_error(env, NULL, "loadObject(path, pinDir, capacities)");
		return NULL;
	}
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	if (!obj) return throw_errno(env, "cannot open the BPF object", errno);
	/* An outer map's inner template is replaced by a map created with the wanted capacity
	 * (libbpf 1.1 cannot resize the template itself); closed once the object is loaded. */
	int templates[16], template_count = 0;
	struct bpf_map *map;
	bpf_object__for_each_map(map, obj)
	{
		bool has;
		napi_value cap;
		if (napi_has_named_property(env, argv[2], bpf_map__name(map), &has) != napi_ok || !has) continue;
		napi_get_named_property(env, argv[2], bpf_map__name(map), &cap);
		int64_t entries;
		if (!arg_i64(env, cap, &entries)) continue;
		struct bpf_map *inner = bpf_map__inner_map(map);
		int err;
		if (inner && template_count < 16) {
			LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = bpf_map__map_flags(inner));
			int fd = bpf_map_create(bpf_map__type(inner), "pc_template", bpf_map__key_size(inner), bpf_map__value_size(inner), (uint32_t)entries, &opts);
			err = fd < 0 ? -errno : bpf_map__set_inner_map_fd(map, fd);
			if (fd >= 0) templates[template_count++] = fd;
		} else {
			err = bpf_map__set_max_entries(map, (uint32_t)entries);
		}
		if (err) {
			for (int i = 0; i < template_count; i++) close(templates[i]);
			bpf_object__close(obj);
			return throw_errno(env, "cannot size a map", -err);
		}
	}
	int err = bpf_object__load(obj);
	for (int i = 0; i < template_count; i++) close(templates[i]);
	if (err) {
		bpf_object__close(obj);
		return throw_errno(env, "the kernel refused the BPF object", -err);
	}
	err = bpf_object__pin_maps(obj, pin_dir);
	if (err) {
		bpf_object__close(obj);
		return throw_errno(env, "cannot pin the maps", -err);
	}
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj)
	{
		char prog_path[4200];
		snprintf(prog_path, sizeof(prog_path), "%s/%s", pin_dir, bpf_program__name(prog));
		err = bpf_program__pin(prog, prog_path);
		if (err) {
			bpf_object__unpin_maps(obj, pin_dir);
			bpf_object__close(obj);
			return throw_errno(env, "cannot pin a program", -err);
		}
	}
	bpf_object__close(obj);
	return NULL;
}

/* objGet(path) -> fd of a pinned map or program. */
static napi_value obj_get(napi_env env, napi_callback_info info)
{
	ARGS(1);
	char path[4096];
	if (!arg_string(env, argv[0], path, sizeof(path))) return NULL;
	int fd = bpf_obj_get(path);
	if (fd < 0) return throw_errno(env, path, errno);
	return num(env, fd);
}

/* openPath(path) -> fd (O_RDONLY|O_DIRECTORY), for a cgroup directory. */
static napi_value open_dir(napi_env env, napi_callback_info info)
{
	ARGS(1);
	char path[4096];
	if (!arg_string(env, argv[0], path, sizeof(path))) return NULL;
	int fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0) return throw_errno(env, path, errno);
	return num(env, fd);
}

static napi_value close_fd(napi_env env, napi_callback_info info)
{
	ARGS(1);
	int64_t fd;
	if (arg_i64(env, argv[0], &fd)) close((int)fd);
	return NULL;
}

/* mapCreate(type, name, keySize, valueSize, maxEntries, flags) -> fd. */
static napi_value map_create(napi_env env, napi_callback_info info)
{
	ARGS(6);
	int64_t type, key_size, value_size, max_entries, flags;
	char name[16];
	if (!arg_i64(env, argv[0], &type) || !arg_string(env, argv[1], name, sizeof(name)) || !arg_i64(env, argv[2], &key_size) ||
	    !arg_i64(env, argv[3], &value_size) || !arg_i64(env, argv[4], &max_entries) || !arg_i64(env, argv[5], &flags))
		return NULL;
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = (uint32_t)flags);
	int fd = bpf_map_create((enum bpf_map_type)type, name, (uint32_t)key_size, (uint32_t)value_size, (uint32_t)max_entries, &opts);
	if (fd < 0) return throw_errno(env, "cannot create a map", errno);
	return num(env, fd);
}

/* mapUpdateMany(fd, keys, values, count, batch) -> entries written. Keys and values are
 * packed back to back. With batch, one BPF_MAP_UPDATE_BATCH call (falling back to the loop
 * on a kernel without batch support for the map type); otherwise a tight loop of single
 * updates. */
static napi_value map_update_many(napi_env env, napi_callback_info info)
{
	ARGS(5);
	int64_t fd, count;
	void *keys, *values;
	size_t keys_len, values_len;
	bool batch;
	if (!arg_i64(env, argv[0], &fd) || !arg_bytes(env, argv[1], &keys, &keys_len) || !arg_bytes(env, argv[2], &values, &values_len) ||
	    !arg_i64(env, argv[3], &count) || napi_get_value_bool(env, argv[4], &batch) != napi_ok || count < 0) {
		napi_throw_type_error(env, NULL, "mapUpdateMany(fd, keys, values, count, batch)");
		return NULL;
	}
	if (count == 0) return num(env, 0);
	if (keys_len % count || values_len % count) {
		napi_throw_range_error(env, NULL, "mapUpdateMany: keys/values are not count whole entries");
		return NULL;
	}
	size_t key_size = keys_len / count, value_size = values_len / count;
	if (batch) {
		uint32_t n = (uint32_t)count;
		LIBBPF_OPTS(bpf_map_batch_opts, opts);
		int err = bpf_map_update_batch((int)fd, keys, values, &n, &opts);
		if (!err) return num(env, n);
		/* A kernel without batch support for this map type: fall back to the loop. */
		if (errno != EOPNOTSUPP && errno != 524 /* ENOTSUPP */) return throw_errno(env, "batch map update", errno);
	}
	for (int64_t i = 0; i < count; i++) {
		if (bpf_map_update_elem((int)fd, (char *)keys + i * key_size, (char *)values + i * value_size, BPF_ANY))
			return throw_errno(env, "map update", errno);
	}
	return num(env, (double)count);
}

/* mapUpdate(fd, key, value) */
static napi_value map_update(napi_env env, napi_callback_info info)
{
	ARGS(3);
	int64_t fd;
	void *key, *value;
	size_t key_len, value_len;
	if (!arg_i64(env, argv[0], &fd) || !arg_bytes(env, argv[1], &key, &key_len) || !arg_bytes(env, argv[2], &value, &value_len)) return NULL;
	if (bpf_map_update_elem((int)fd, key, value, BPF_ANY)) return throw_errno(env, "map update", errno);
	return NULL;
}

/* mapLookup(fd, key, valueBytes) -> Buffer | null. For per-CPU maps pass
 * round_up(value, 8) * possible CPUs as valueBytes. */
static napi_value map_lookup(napi_env env, napi_callback_info info)
{
	ARGS(3);
	int64_t fd, value_size;
	void *key;
	size_t key_len;
	if (!arg_i64(env, argv[0], &fd) || !arg_bytes(env, argv[1], &key, &key_len) || !arg_i64(env, argv[2], &value_size)) return NULL;
	void *value = calloc(1, (size_t)value_size);
	if (bpf_map_lookup_elem((int)fd, key, value)) {
		int err = errno;
		free(value);
		if (err == ENOENT) {
			napi_value null;
			napi_get_null(env, &null);
			return null;
		}
		return throw_errno(env, "map lookup", err);
	}
	napi_value out = bytes_copy(env, value, (size_t)value_size);
	free(value);
	return out;
}

/* mapCount(fd, keySize) -> number of keys (walks get_next_key). */
static napi_value map_count(napi_env env, napi_callback_info info)
{
	ARGS(2);
	int64_t fd, key_size;
	if (!arg_i64(env, argv[0], &fd) || !arg_i64(env, argv[1], &key_size)) return NULL;
	char *a = calloc(2, (size_t)key_size), *b = a + key_size;
	double n = 0;
	void *prev = NULL;
	while (bpf_map_get_next_key((int)fd, prev, b) == 0) {
		n++;
		memcpy(a, b, (size_t)key_size);
		prev = a;
	}
	free(a);
	return num(env, n);
}

/* mapFdById(id) -> fd of the map with that id (an inner map found through its outer slot). */
static napi_value map_fd_by_id(napi_env env, napi_callback_info info)
{
	ARGS(1);
	int64_t id;
	if (!arg_i64(env, argv[0], &id)) return NULL;
	int fd = bpf_map_get_fd_by_id((uint32_t)id);
	if (fd < 0) return throw_errno(env, "map by id", errno);
	return num(env, fd);
}

/* possibleCpus() -> the number of per-CPU value copies. */
static napi_value possible_cpus(napi_env env, napi_callback_info info)
{
	(void)info;
	int n = libbpf_num_possible_cpus();
	if (n < 0) return throw_errno(env, "possible cpus", -n);
	return num(env, n);
}

/* objInfo(fd) -> {id, type, keySize, valueSize, maxEntries, name} for a map, {id, type, name} for a program. */
static napi_value obj_info(napi_env env, napi_callback_info info)
{
	ARGS(2);
	int64_t fd;
	bool is_map;
	if (!arg_i64(env, argv[0], &fd) || napi_get_value_bool(env, argv[1], &is_map) != napi_ok) return NULL;
	napi_value out, name;
	napi_create_object(env, &out);
	if (is_map) {
		struct bpf_map_info m = {0};
		uint32_t len = sizeof(m);
		if (bpf_obj_get_info_by_fd((int)fd, &m, &len)) return throw_errno(env, "map info", errno);
		napi_set_named_property(env, out, "id", num(env, m.id));
		napi_set_named_property(env, out, "type", num(env, m.type));
		napi_set_named_property(env, out, "keySize", num(env, m.key_size));
		napi_set_named_property(env, out, "valueSize", num(env, m.value_size));
		napi_set_named_property(env, out, "maxEntries", num(env, m.max_entries));
		napi_create_string_utf8(env, m.name, NAPI_AUTO_LENGTH, &name);
	} else {
		struct bpf_prog_info p = {0};
		uint32_t len = sizeof(p);
		if (bpf_obj_get_info_by_fd((int)fd, &p, &len)) return throw_errno(env, "program info", errno);
		napi_set_named_property(env, out, "id", num(env, p.id));
		napi_set_named_property(env, out, "type", num(env, p.type));
		napi_create_string_utf8(env, p.name, NAPI_AUTO_LENGTH, &name);
	}
	napi_set_named_property(env, out, "name", name);
	return out;
}

/* progAttach(progFd, cgroupFd, attachType): BPF_F_ALLOW_MULTI, so other programs on the
 * path keep running (any 0 means EPERM). */
static napi_value prog_attach(napi_env env, napi_callback_info info)
{
	ARGS(3);
	int64_t prog, cgroup, type;
	if (!arg_i64(env, argv[0], &prog) || !arg_i64(env, argv[1], &cgroup) || !arg_i64(env, argv[2], &type)) return NULL;
	if (bpf_prog_attach((int)prog, (int)cgroup, (enum bpf_attach_type)type, BPF_F_ALLOW_MULTI)) return throw_errno(env, "attach", errno);
	return NULL;
}

static napi_value prog_detach(napi_env env, napi_callback_info info)
{
	ARGS(3);
	int64_t prog, cgroup, type;
	if (!arg_i64(env, argv[0], &prog) || !arg_i64(env, argv[1], &cgroup) || !arg_i64(env, argv[2], &type)) return NULL;
	if (bpf_prog_detach2((int)prog, (int)cgroup, (enum bpf_attach_type)type)) return throw_errno(env, "detach", errno);
	return NULL;
}

/* progQuery(cgroupFd, attachType) -> ids of the programs attached there (not inherited). */
static napi_value prog_query(napi_env env, napi_callback_info info)
{
	ARGS(2);
	int64_t cgroup, type;
	if (!arg_i64(env, argv[0], &cgroup) || !arg_i64(env, argv[1], &type)) return NULL;
	uint32_t ids[64], count = 64, flags = 0;
	if (bpf_prog_query((int)cgroup, (enum bpf_attach_type)type, 0, &flags, ids, &count)) return throw_errno(env, "query", errno);
	napi_value out;
	napi_create_array_with_length(env, count, &out);
	for (uint32_t i = 0; i < count; i++) napi_set_element(env, out, i, num(env, ids[i]));
	return out;
}

/* synchronizeRcu(): returns once every BPF program that was running when it was called
 * has finished (MEMBARRIER_CMD_GLOBAL is implemented with synchronize_rcu(), and cgroup
 * sock_addr programs run inside an RCU read-side critical section). */
static napi_value synchronize_rcu(napi_env env, napi_callback_info info)
{
	(void)info;
	if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0)) return throw_errno(env, "membarrier", errno);
	return NULL;
}

struct drain { napi_env env; napi_value array; uint32_t count; };

static int on_event(void *ctx, void *data, size_t size)
{
	struct drain *d = ctx;
	napi_set_element(d->env, d->array, d->count++, bytes_copy(d->env, data, size));
	return 0;
}

/* ringbufRead(fd, timeoutMs) -> Buffer[]: the records available now (or that arrive within
 * the timeout), each a copy. */
static napi_value ringbuf_read(napi_env env, napi_callback_info info)
{
	ARGS(2);
	int64_t fd, timeout;
	if (!arg_i64(env, argv[0], &fd) || !arg_i64(env, argv[1], &timeout)) return NULL;
	struct drain d = { .env = env };
	napi_create_array(env, &d.array);
	struct ring_buffer *rb = ring_buffer__new((int)fd, on_event, &d, NULL);
	if (!rb) return throw_errno(env, "ring buffer", errno);
	int err = ring_buffer__poll(rb, (int)timeout);
	ring_buffer__free(rb);
	if (err < 0 && err != -EINTR) return throw_errno(env, "ring buffer poll", -err);
	return d.array;
}

/* btfStructs(objectPath) -> {name: {size, fields: {name: {offset, size}}}} for every named
 * struct in the object's BTF. */
static napi_value btf_structs(napi_env env, napi_callback_info info)
{
	ARGS(1);
	char path[4096];
	if (!arg_string(env, argv[0], path, sizeof(path))) return NULL;
	struct btf *btf = btf__parse(path, NULL);
	if (!btf) return throw_errno(env, "cannot read the object's BTF", errno);
	napi_value out;
	napi_create_object(env, &out);
	uint32_t n = btf__type_cnt(btf);
	for (uint32_t id = 1; id < n; id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		if (!btf_is_struct(t) || t->name_off == 0) continue;
		napi_value s, fields;
		napi_create_object(env, &s);
		napi_create_object(env, &fields);
		napi_set_named_property(env, s, "size", num(env, t->size));
		const struct btf_member *m = btf_members(t);
		for (uint16_t i = 0; i < btf_vlen(t); i++, m++) {
			napi_value f;
			napi_create_object(env, &f);
			napi_set_named_property(env, f, "offset", num(env, btf_member_bit_offset(t, i) / 8));
			napi_set_named_property(env, f, "size", num(env, (double)btf__resolve_size(btf, m->type)));
			napi_set_named_property(env, fields, btf__name_by_offset(btf, m->name_off), f);
		}
		napi_set_named_property(env, s, "fields", fields);
		napi_set_named_property(env, out, btf__name_by_offset(btf, t->name_off), s);
	}
	btf__free(btf);
	return out;
}

/* connectLoop(family, address, port, iterations) -> CPU nanoseconds this thread spent (user +
 * system, CLOCK_THREAD_CPUTIME_ID, so time other processes take from the core is not
 * counted) on `iterations` connect() calls on one UDP socket (each runs the cgroup connect
 * hook; no packet is sent). Used by the kernel bench; returns -errno of the first failing
 * call as a negative number. */
static napi_value connect_loop(napi_env env, napi_callback_info info)
{
	ARGS(4);
	int64_t family, port, iterations;
	char address[64];
	if (!arg_i64(env, argv[0], &family) || !arg_string(env, argv[1], address, sizeof(address)) || !arg_i64(env, argv[2], &port) ||
	    !arg_i64(env, argv[3], &iterations))
		return NULL;
	struct sockaddr_storage ss = {0};
	socklen_t len;
	if (family == 4) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, address, &a->sin_addr);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, address, &a->sin6_addr);
		len = sizeof(*a);
	}
	int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
	if (fd < 0) return throw_errno(env, "socket", errno);
	struct timespec t0, t1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	for (int64_t i = 0; i < iterations; i++) {
		if (connect(fd, (struct sockaddr *)&ss, len)) {
			int err = errno;
			close(fd);
			return num(env, -err);
		}
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
	close(fd);
	return num(env, (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec));
}

/* libbpf's messages (the verifier log among them) go to stderr only with PORTCULLIS_DEBUG=1. */
static int print_debug(enum libbpf_print_level level, const char *format, va_list args)
{
	(void)level;
	return vfprintf(stderr, format, args);
}

static napi_value init(napi_env env, napi_value exports)
{
	struct { const char *name; napi_callback fn; } fns[] = {
		{ "loadObject", load_object }, { "objGet", obj_get }, { "openDir", open_dir }, { "close", close_fd },
		{ "mapCreate", map_create }, { "mapUpdateMany", map_update_many }, { "mapUpdate", map_update },
		{ "mapLookup", map_lookup }, { "mapCount", map_count }, { "possibleCpus", possible_cpus },
		{ "objInfo", obj_info }, { "progAttach", prog_attach }, { "progDetach", prog_detach },
		{ "progQuery", prog_query }, { "synchronizeRcu", synchronize_rcu }, { "ringbufRead", ringbuf_read },
		{ "btfStructs", btf_structs }, { "connectLoop", connect_loop }, { "mapFdById", map_fd_by_id },
	};
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		napi_value f;
		napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f);
		napi_set_named_property(env, exports, fns[i].name, f);
	}
	/* The uapi numbers the loader needs, from the headers rather than copied by hand. */
	struct { const char *name; int value; } consts[] = {
		{ "MAP_HASH", BPF_MAP_TYPE_HASH }, { "MAP_ARRAY", BPF_MAP_TYPE_ARRAY }, { "MAP_LPM_TRIE", BPF_MAP_TYPE_LPM_TRIE },
		{ "F_NO_PREALLOC", BPF_F_NO_PREALLOC }, { "ATTACH_CONNECT4", BPF_CGROUP_INET4_CONNECT },
		{ "ATTACH_CONNECT6", BPF_CGROUP_INET6_CONNECT }, { "ATTACH_SENDMSG4", BPF_CGROUP_UDP4_SENDMSG },
		{ "ATTACH_SENDMSG6", BPF_CGROUP_UDP6_SENDMSG },
	};
	for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++) napi_set_named_property(env, exports, consts[i].name, num(env, consts[i].value));
	const char *debug = getenv("PORTCULLIS_DEBUG");
	libbpf_set_print(debug && strcmp(debug, "1") == 0 ? print_debug : NULL);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
