// A client and its server over a Unix socket pair, both waiting to receive: the server
// answers only after a request, and the client (which lost its request) waits for the
// answer. Neither pipe nor lock: the wait-for cycle runs through the socket's peer.
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
    struct stat a, b;
    fstat(sv[0], &a);
    fstat(sv[1], &b);
    pid_t server = fork();
    if (server == 0) {
        close(sv[0]);
        char req[64];
        for (;;) {
            ssize_t n = recv(sv[1], req, sizeof req, 0); // waits for a request
            if (n <= 0) return 0;
            send(sv[1], "ok", 2, 0);
        }
    }
    close(sv[1]);
    printf("ready server=%d client_inode=%lu server_inode=%lu\n", server,
           (unsigned long)a.st_ino, (unsigned long)b.st_ino);
    fflush(stdout);
    char resp[64];
    recv(sv[0], resp, sizeof resp, 0); // waits for an answer to a request never sent
    return 0;
}
