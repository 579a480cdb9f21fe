/* oom_loop CGROUP_PROCS PAUSE_MS: OOM kills in a loop, for `cargo xtask soak`.
 *
 * Forever: fork a child named "soak_oom" that joins the memory-limited cgroup whose
 * cgroup.procs file is CGROUP_PROCS and touches memory until the kernel's OOM killer kills it;
 * reap it, sleep PAUSE_MS, repeat. The parent stays outside the cgroup. Each kill is counted on
 * stderr ("oom_loop: N kills") every 10 kills; a child that exits any other way is an error
 * (exit 1), so the soak never silently runs without OOM kills. Stops on SIGTERM/SIGKILL. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void victim(const char *procs)
{
    prctl(PR_SET_NAME, "soak_oom", 0, 0, 0);
    FILE *f = fopen(procs, "w");
    if (!f || fprintf(f, "%d\n", getpid()) < 0 || fclose(f) != 0) {
        fprintf(stderr, "oom_loop: joining %s: %s\n", procs, strerror(errno));
        _exit(3);
    }
    for (;;) {
        char *m = malloc(1 << 20);
        if (m)
            memset(m, 1, 1 << 20);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 || atoi(argv[2]) < 0) {
        fprintf(stderr, "usage: oom_loop CGROUP_PROCS PAUSE_MS\n");
        return 2;
    }
    long pause_ms = atol(argv[2]);
    struct timespec pause = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
    unsigned long kills = 0;
    for (;;) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "oom_loop: fork: %s\n", strerror(errno));
            return 1;
        }
        if (pid == 0)
            victim(argv[1]);
        int status;
        if (waitpid(pid, &status, 0) < 0) {
            fprintf(stderr, "oom_loop: waitpid: %s\n", strerror(errno));
            return 1;
        }
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
            fprintf(stderr, "oom_loop: victim %d was not OOM-killed (status %d)\n", pid, status);
            return 1;
        }
        if (++kills % 10 == 0) {
            fprintf(stderr, "oom_loop: %lu kills\n", kills);
        }
        nanosleep(&pause, NULL);
    }
}
