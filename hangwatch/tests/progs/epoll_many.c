/* Puts N eventfds (never written: never ready) in each of S epoll sets and
 * waits forever in epoll_wait on the first set, from the main thread; the
 * other sets are waited on by one thread each.
 *
 * usage: epoll_many SETS FDS_PER_SET   (needs SETS * (FDS_PER_SET + 1) fds)
 * ready line: ready sets=<s> fds=<n> epfd=<first epoll fd>
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

static void *waiter(void *arg)
{
	int ep = (int)(long)arg;
	struct epoll_event ev;
	for (;;)
		epoll_wait(ep, &ev, 1, -1);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: epoll_many SETS FDS_PER_SET\n");
		return 2;
	}
	int sets = atoi(argv[1]), per = atoi(argv[2]);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	int first = -1;
	for (int s = 0; s < sets; s++) {
		int ep = epoll_create1(0);
		if (ep < 0) {
			perror("epoll_many: epoll_create1");
			return 1;
		}
		for (int i = 0; i < per; i++) {
			int fd = eventfd(0, 0);
			struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
			if (fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
				perror("epoll_many: eventfd/epoll_ctl");
				return 1;
			}
		}
		if (s == 0) {
			first = ep;
		} else {
			pthread_t t;
			pthread_create(&t, NULL, waiter, (void *)(long)ep);
		}
	}
	printf("ready sets=%d fds=%d epfd=%d\n", sets, per, first);
	fflush(stdout);
	waiter((void *)(long)first);
	return 0;
}
