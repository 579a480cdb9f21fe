/* poll_loop MODE SECONDS: poll(2) or epoll_wait(2) on an idle pipe in a tight loop, with a
 * zero timeout (never sleeps) or a 1 ms timeout (sleeps and is woken by its timer).
 * MODE: poll0 | poll1ms | epoll0 | epoll1ms. Prints calls per second. */
#include "common.h"

#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    double secs = arg_seconds(argc, argv, 2);
    int use_epoll, timeout;
    if (!strcmp(mode, "poll0")) {
        use_epoll = 0, timeout = 0;
    } else if (!strcmp(mode, "poll1ms")) {
        use_epoll = 0, timeout = 1;
    } else if (!strcmp(mode, "epoll0")) {
        use_epoll = 1, timeout = 0;
    } else if (!strcmp(mode, "epoll1ms")) {
        use_epoll = 1, timeout = 1;
    } else {
        fprintf(stderr, "usage: poll_loop poll0|poll1ms|epoll0|epoll1ms SECONDS\n");
        return 2;
    }
    int p[2];
    if (pipe(p))
        die("pipe");
    int ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p[0]};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev))
        die("epoll_ctl");
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};

    unsigned long long ops = 0;
    double start = now_s(), end = start + secs, t = start;
    /* With a zero timeout a call takes well under a microsecond: look at the clock every
     * 256 calls. With 1 ms, every call. */
    unsigned check = timeout ? 1 : 256;
    for (;;) {
        for (unsigned i = 0; i < check; i++) {
            int r = use_epoll ? epoll_wait(ep, &ev, 1, timeout) : poll(&pfd, 1, timeout);
            if (r < 0 && errno != EINTR)
                die(use_epoll ? "epoll_wait" : "poll");
        }
        ops += check;
        if ((t = now_s()) >= end)
            break;
    }
    report(ops, t - start);
    return 0;
}
