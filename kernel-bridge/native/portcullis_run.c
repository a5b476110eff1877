/* Owns placing a process in a workload's cgroup with the workload's uid/gid before it runs
 * anything: `portcullis exec` uses `exec`, the real-kernel tests use `probe`. Runs as root;
 * joins the cgroup first (writing cgroup.procs needs root), then drops to gid and uid.
 *
 *   portcullis_run exec  <cgroup-dir> <uid|-> <gid|-> -- <cmd> [args…]
 *   portcullis_run probe <cgroup-dir> <uid|-> <gid|->
 *
 * probe reads lines `<tcp|udp> <connect|sendto> <address> <port>` and answers each with
 * one line: the errno of the attempt (0 when it succeeded). An IPv4 text address uses an
 * AF_INET socket; any IPv6 text (v4-mapped included) an AF_INET6 socket. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "portcullis_run: %s: %s\n", what, strerror(errno));
	exit(126);
}

static void enter(const char *cgroup, const char *uid, const char *gid)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	int fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, "0", 1) != 1) die(path);
	close(fd);
	if (strcmp(gid, "-") != 0) {
		gid_t g = (gid_t)strtoul(gid, NULL, 10);
		if (setgroups(1, &g) || setresgid(g, g, g)) die("setgid");
	}
	if (strcmp(uid, "-") != 0) {
		uid_t u = (uid_t)strtoul(uid, NULL, 10);
		if (setresuid(u, u, u)) die("setuid");
	}
}

static int attempt(const char *protocol, const char *mode, const char *address, int port)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	int family;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, address, &a4->sin_addr) == 1) {
		family = a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, address, &a6->sin6_addr) == 1) {
		family = a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		len = sizeof(*a6);
	} else {
		return EINVAL;
	}
	int udp = strcmp(protocol, "udp") == 0;
	int fd = socket(family, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
	if (fd < 0) return errno;
	int rc;
	if (udp && strcmp(mode, "sendto") == 0) rc = (int)sendto(fd, "x", 1, 0, (struct sockaddr *)&ss, len);
	else rc = connect(fd, (struct sockaddr *)&ss, len);
	int err = rc < 0 ? errno : 0;
	close(fd);
	return err;
}

int main(int argc, char **argv)
{
	if (argc >= 7 && strcmp(argv[1], "exec") == 0 && strcmp(argv[5], "--") == 0) {
		enter(argv[2], argv[3], argv[4]);
		execvp(argv[6], argv + 6);
		die(argv[6]);
	}
	if (argc == 5 && strcmp(argv[1], "probe") == 0) {
		enter(argv[2], argv[3], argv[4]);
		char protocol[8], mode[8], address[64];
		int port;
		setvbuf(stdout, NULL, _IOLBF, 0);
		while (scanf("%7s %7s %63s %d", protocol, mode, address, &port) == 4) printf("%d\n", attempt(protocol, mode, address, port));
		return 0;
	}
	fprintf(stderr, "usage: portcullis_run exec <cgroup> <uid|-> <gid|-> -- <cmd…> | probe <cgroup> <uid|-> <gid|->\n");
	return 2;
}
