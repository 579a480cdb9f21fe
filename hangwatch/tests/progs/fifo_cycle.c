// Two processes talk through two named FIFOs and each waits to read what the other has not
// written: a wait-for cycle through FIFOs (pipes opened by path). The FIFOs are unlinked once
// both ends are open. Prints "ready peer=PID dir=PATH".
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void) {
    char dir[] = "/tmp/hangwatch-fifo-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char f1[64], f2[64];
    snprintf(f1, sizeof f1, "%s/to_parent", dir);
    snprintf(f2, sizeof f2, "%s/to_child", dir);
    if (mkfifo(f1, 0600) != 0 || mkfifo(f2, 0600) != 0) return 1;
    pid_t peer = fork();
    char c;
    if (peer == 0) {
        int w = open(f1, O_WRONLY); // pairs with the parent's read open
        int r = open(f2, O_RDONLY);
        if (w < 0 || r < 0) return 1;
        return (int)read(r, &c, 1);
    }
    int r = open(f1, O_RDONLY);
    int w = open(f2, O_WRONLY);
    if (r < 0 || w < 0) return 1;
    unlink(f1);
    unlink(f2);
    rmdir(dir);
    printf("ready peer=%d dir=%s\n", peer, dir);
    fflush(stdout);
    return (int)read(r, &c, 1);
}
