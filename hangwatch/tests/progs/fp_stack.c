/* cflags: -fno-omit-frame-pointer -fno-inline
 *
 * Built with frame pointers, as Ubuntu 24.04 builds every package and Debian builds
 * PostgreSQL: the unwind rules of hw_fp_inner and hw_fp_outer compute their callers from
 * rbp, which /proc/PID/task/TID/syscall does not show. main calls hw_fp_outer, which calls
 * hw_fp_inner, which blocks forever in read() on a pipe nobody writes to.
 *
 * ready line: ready tid=<tid of the blocked thread>
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>

static int fds[2];

__attribute__((noinline)) int hw_fp_inner(int depth)
{
	volatile char buf[64];
	buf[0] = (char)depth;
	ssize_t n = read(fds[0], (char *)buf, sizeof buf);
	return (int)n + buf[0];
}

__attribute__((noinline)) int hw_fp_outer(int depth)
{
	volatile int local[8];
	local[0] = hw_fp_inner(depth + 1);
	return local[0] + 1;
}

int main(void)
{
	if (pipe(fds) != 0)
		return 1;
	printf("ready tid=%d\n", gettid());
	fflush(stdout);
	return hw_fp_outer(0);
}
