/* Main thread blocks in epoll_wait(epfd, ev, 8, -1); the epoll set holds the
 * read end of a pipe nobody writes to.
 *
 * ready line: ready syscall=<epoll_wait|epoll_pwait> epfd=<fd> pipe_fd=<fd>
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	int p[2];
	if (pipe(p) != 0) {
		perror("epoll_wait: pipe");
		return 1;
	}
	int epfd = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = p[0] };
	if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, p[0], &ev) != 0) {
		perror("epoll_wait: epoll setup");
		return 1;
	}
	struct epoll_event evs[8];
#ifdef SYS_epoll_wait
	const char *name = "epoll_wait";
#else
	const char *name = "epoll_pwait";
#endif
	printf("ready syscall=%s epfd=%d pipe_fd=%d\n", name, epfd, p[0]);
	fflush(stdout);
	for (;;) {
#ifdef SYS_epoll_wait
		syscall(SYS_epoll_wait, epfd, evs, 8, -1);
#else
		syscall(SYS_epoll_pwait, epfd, evs, 8, -1, NULL, 0);
#endif
	}
}
