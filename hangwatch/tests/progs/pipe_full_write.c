/* Fills a pipe (non-blocking writes until EAGAIN), switches the write end
 * back to blocking and blocks in write(fd, buf, 4096). Nobody reads.
 *
 * ready line: ready syscall=write fd=<write fd> ino=<pipe inode> pipe_size=<n> filled=<n>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char buf[1 << 16];

int main(void)
{
	int p[2];
	struct stat st;
	if (pipe(p) != 0 || fstat(p[1], &st) != 0) {
		perror("pipe_full_write: pipe");
		return 1;
	}
	int size = fcntl(p[1], F_GETPIPE_SZ);
	if (size <= 0 || fcntl(p[1], F_SETFL, O_NONBLOCK) != 0) {
		perror("pipe_full_write: fcntl");
		return 1;
	}
	memset(buf, 'x', sizeof buf);
	size_t filled = 0;
	/* Big chunks first, then single bytes, so no free byte is left. */
	for (size_t chunk = sizeof buf; chunk > 0; chunk /= 2) {
		for (;;) {
			ssize_t n = write(p[1], buf, chunk);
			if (n > 0) {
				filled += (size_t)n;
				continue;
			}
			if (n < 0 && errno == EAGAIN)
				break;
			perror("pipe_full_write: fill");
			return 1;
		}
	}
	if (fcntl(p[1], F_SETFL, 0) != 0) {
		perror("pipe_full_write: fcntl");
		return 1;
	}
	printf("ready syscall=write fd=%d ino=%lu pipe_size=%d filled=%zu\n", p[1],
	       (unsigned long)st.st_ino, size, filled);
	fflush(stdout);
	for (;;)
		write(p[1], buf, 4096);
}
