/* runstat RESULT_FILE COMMAND [ARGS...]: runs COMMAND (stdin, stdout and stderr inherited),
 * then writes to RESULT_FILE, on one line, its wall time (ns), user and system CPU (us, with
 * the descendants it waited for), peak RSS (KiB) and raw wait status, from wait4. Every
 * benchmark workload and every timed `hangwatch snapshot` runs under it. */
#include "common.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: runstat RESULT_FILE COMMAND [ARGS...]\n");
        return 2;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        die(argv[2]);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0)
        die("wait4");
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long wall = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    FILE *out = fopen(argv[1], "w");
    if (!out)
        die(argv[1]);
    fprintf(out, "%lld %lld %lld %ld %d\n", wall,
           (long long)ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec,
           (long long)ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec, ru.ru_maxrss, status);
    if (fclose(out))
        die(argv[1]);
    return 0;
}
