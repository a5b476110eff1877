#!/usr/bin/env bash
# Owns building the kernel path: the BPF object (kernel-bridge/bpf), the libbpf N-API addon
# and the exec/probe helper (kernel-bridge/native) into build/kernel/. `npm run build` runs
# it; as root (or with --install) it first installs clang, bpftool and libbpf-dev from
# Debian when they are missing and mounts bpffs (PORTCULLIS_NO_INSTALL=1 turns that off).
#
# It never fails the build: when something is missing it prints one line saying the kernel
# path is off and why, and exits 0 (everything else, the kernel simulator included, works).
set -uo pipefail
cd "$(dirname "$0")/.."
out=build/kernel
off() {
  echo "portcullis: kernel path off: $1"
  exit 0
}

[ "$(uname -s)" = Linux ] || off "not Linux"
if [ "${1:-}" = --install ] || { [ "$(id -u)" = 0 ] && [ -z "${PORTCULLIS_NO_INSTALL:-}" ]; }; then
  missing=()
  command -v clang >/dev/null || missing+=(clang)
  command -v bpftool >/dev/null || missing+=(bpftool)
  [ -f /usr/include/bpf/libbpf.h ] || missing+=(libbpf-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || off "${missing[*]} missing and not root (run scripts/setup-kernel.sh --install as root)"
    command -v apt-get >/dev/null || off "${missing[*]} missing and no apt-get to install them"
    echo "portcullis: installing ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null || off "apt-get install ${missing[*]} failed"
  fi
  if [ "$(id -u)" = 0 ] && ! mountpoint -q /sys/fs/bpf; then mount -t bpf bpf /sys/fs/bpf || echo "portcullis: could not mount bpffs at /sys/fs/bpf"; fi
fi
command -v clang >/dev/null || off "clang not found (run scripts/setup-kernel.sh --install as root)"
command -v bpftool >/dev/null || off "bpftool not found (run scripts/setup-kernel.sh --install as root)"
[ -f /usr/include/bpf/libbpf.h ] || off "libbpf-dev not installed (run scripts/setup-kernel.sh --install as root)"
[ -r /sys/kernel/btf/vmlinux ] || off "the kernel has no BTF (/sys/kernel/btf/vmlinux)"
node_include="$(dirname "$(dirname "$(command -v node)")")/include/node"
[ -f "$node_include/node_api.h" ] || node_include=/usr/include/node
[ -f "$node_include/node_api.h" ] || off "Node headers (node_api.h) not found"
command -v gcc >/dev/null || off "gcc not found"

mkdir -p "$out"
# vmlinux.h is generated from the running kernel's BTF, never committed.
bpftool btf dump file /sys/kernel/btf/vmlinux format c >"$out/vmlinux.h.tmp" && mv "$out/vmlinux.h.tmp" "$out/vmlinux.h" || off "bpftool could not dump the kernel BTF"
clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -Wall -Werror -I "$out" -c kernel-bridge/bpf/portcullis.bpf.c -o "$out/portcullis.bpf.o" || off "clang failed on kernel-bridge/bpf/portcullis.bpf.c"
gcc -O2 -Wall -Werror -shared -fPIC -DNODE_GYP_MODULE_NAME=portcullis_bpf -I "$node_include" kernel-bridge/native/portcullis_bpf.c -lbpf -o "$out/portcullis_bpf.node" || off "could not build the libbpf addon"
gcc -O2 -Wall -Werror kernel-bridge/native/portcullis_run.c -o "$out/portcullis_run" || off "could not build portcullis_run"
echo "portcullis: kernel path built in $out"
