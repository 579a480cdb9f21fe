// A worker pool in a memory-limited cgroup: the parent keeps the result pipe's write end open
// (as multiprocessing does for its queues) and waits for a result; its worker allocates past
// the cgroup limit and is OOM-killed. The parent waits forever.
// argv[1]: the cgroup file to join (cgroup.procs of a memory-limited cgroup).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (!f || fprintf(f, "%d\n", getpid()) < 0 || fclose(f) != 0) {
            perror("joining the cgroup");
            return 2;
        }
    }
    int p[2];
    if (pipe(p) != 0) return 1;
    pid_t worker = fork();
    if (worker == 0) {
        close(p[0]);
        for (;;) {
            char *m = malloc(1 << 20);
            if (!m) continue;
            memset(m, 1, 1 << 20);
        }
    }
    printf("ready worker=%d\n", worker);
    fflush(stdout);
    char result[64];
    ssize_t n = read(p[0], result, sizeof result); // the worker never answers
    return n > 0 ? 0 : 1;
}
