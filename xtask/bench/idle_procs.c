/* A busy node's idle processes: `idle_procs park N` forks N children that
 * sleep in pause() and never run again, prints "ready" once all exist, and
 * when its stdin closes kills and reaps them all and exits 0. */
#include "common.h"

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "park") != 0) {
        fprintf(stderr, "usage: idle_procs park N\n");
        return 2;
    }
    long n = atol(argv[2]);
    if (n <= 0) {
        fprintf(stderr, "idle_procs: N must be positive\n");
        return 2;
    }
    pid_t *kids = calloc((size_t)n, sizeof *kids);
    if (!kids)
        die("calloc");
    long made = 0;
    for (; made < n; made++) {
        pid_t c = fork();
        if (c == 0) {
            for (;;)
                pause();
        }
        if (c < 0)
            break;
        kids[made] = c;
    }
    int rc = 0;
    if (made < n) {
        fprintf(stderr, "idle_procs: fork failed after %ld children: %s\n", made, strerror(errno));
        rc = 1;
    } else {
        printf("ready\n");
        fflush(stdout);
        char buf[64];
        while (read(0, buf, sizeof buf) > 0)
            ;
    }
    for (long i = 0; i < made; i++)
        kill(kids[i], SIGKILL);
    for (long i = 0; i < made; i++)
        waitpid(kids[i], NULL, 0);
    return rc;
}
