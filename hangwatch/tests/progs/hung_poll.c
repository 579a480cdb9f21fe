// Does real work (0.5 s of CPU), then waits forever on a socket nobody will write to (the libzmq
// hang): its peer is held by a helper process that has gone silent (it waits in pause()).
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
    pid_t peer = fork();
    if (peer == 0) {
        close(sv[0]);
        for (;;) pause();
    }
    close(sv[1]);
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 1000000; i++) x += i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 500000000L);
    printf("ready peer=%d\n", peer);
    fflush(stdout);
    struct pollfd pfd = {.fd = sv[0], .events = POLLIN};
    return poll(&pfd, 1, -1);
}
