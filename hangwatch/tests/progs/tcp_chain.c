// A client waits for a reply on a loopback TCP connection (recv). Its server:
//   locked  accepted the connection, closed its listening socket, and waits for a flock that a
//           third process holds; that process has stopped itself (SIGSTOP). The client did
//           0.5 s of work first. Chain: client -> server (TCP peer) -> holder (lock), stopped.
//   idle    is a healthy server idle in epoll_wait on its listening socket and the connection:
//           a way out, not stuck. The client did no work (a queue consumer).
// Prints "ready server=PID holder=PID port=N" once every process is where it should be.
#define _GNU_SOURCE
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static void burn(void) {
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 1000000; i++) x += i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < 500000000L);
}

int main(int argc, char **argv) {
    int locked = argc > 1 && strcmp(argv[1], "locked") == 0;
    char path[] = "/tmp/hangwatch-tcplock-XXXXXX";
    int fd_h = mkstemp(path);
    int fd_s = open(path, O_RDWR);
    if (fd_h < 0 || fd_s < 0) return 1;
    unlink(path);
    int sync[2];
    if (pipe(sync) != 0) return 1;
    char c;
    pid_t holder = 0;
    if (locked) {
        holder = fork();
        if (holder == 0) {
            close(fd_s);
            if (flock(fd_h, LOCK_EX) != 0) return 1;
            if (write(sync[1], "h", 1) != 1) return 1;
            for (;;) raise(SIGSTOP);
        }
        if (read(sync[0], &c, 1) != 1) return 1;
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (ls < 0 || bind(ls, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(ls, 16) != 0 ||
        getsockname(ls, (struct sockaddr *)&addr, &alen) != 0)
        return 1;
    pid_t server = fork();
    if (server == 0) {
        close(fd_h);
        int conn = accept(ls, NULL, NULL);
        if (conn < 0) return 1;
        char req;
        if (read(conn, &req, 1) != 1) return 1;
        if (locked) {
            close(ls);
            if (write(sync[1], "s", 1) != 1) return 1;
            return flock(fd_s, LOCK_EX); // the reply would come after the lock: never
        }
        int ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
        epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
        ev.data.fd = conn;
        epoll_ctl(ep, EPOLL_CTL_ADD, conn, &ev);
        if (write(sync[1], "s", 1) != 1) return 1;
        struct epoll_event out[8];
        return epoll_wait(ep, out, 8, -1);
    }
    close(ls);
    close(fd_h);
    close(fd_s);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) return 1;
    if (locked) burn();
    if (write(s, "q", 1) != 1) return 1;
    if (read(sync[0], &c, 1) != 1) return 1;
    printf("ready server=%d holder=%d port=%d\n", server, holder, ntohs(addr.sin_port));
    fflush(stdout);
    char reply;
    return (int)recv(s, &reply, 1, 0);
}
