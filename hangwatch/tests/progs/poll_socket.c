/* Main thread blocks in poll(2) with an infinite timeout on one end of a
 * UNIX socketpair whose other end nobody writes to.
 *
 * ready line: ready syscall=<poll|ppoll> fd=<fd> ino=<socket inode>
 */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	int sv[2];
	struct stat st;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || fstat(sv[0], &st) != 0) {
		perror("poll_socket: setup");
		return 1;
	}
	struct pollfd p = { .fd = sv[0], .events = POLLIN };
#ifdef SYS_poll
	const char *name = "poll";
#else
	const char *name = "ppoll";
#endif
	printf("ready syscall=%s fd=%d ino=%lu\n", name, sv[0], (unsigned long)st.st_ino);
	fflush(stdout);
	for (;;) {
#ifdef SYS_poll
		syscall(SYS_poll, &p, 1, -1);
#else
		syscall(SYS_ppoll, &p, 1, NULL, NULL, 0);
#endif
	}
}
