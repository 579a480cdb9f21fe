/* task_churn MODE SECONDS: tasks that start and end, in a loop.
 *   fork_exec - fork, the child execs /bin/true (which exits), the parent waits for it
 *   thread    - pthread_create a thread that returns at once, pthread_join it
 * Prints tasks per second. */
#include "common.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

static void *nothing(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    double secs = arg_seconds(argc, argv, 2);
    int threads = !strcmp(mode, "thread");
    if (!threads && strcmp(mode, "fork_exec")) {
        fprintf(stderr, "usage: task_churn fork_exec|thread SECONDS\n");
        return 2;
    }
    char *const child_argv[] = {"true", NULL};
    char *const child_env[] = {NULL};
    unsigned long long ops = 0;
    double start = now_s(), end = start + secs, t = start;
    do {
        if (threads) {
            pthread_t th;
            if (pthread_create(&th, NULL, nothing, NULL))
                die("pthread_create");
            pthread_join(th, NULL);
        } else {
            pid_t pid = fork();
            if (pid < 0)
                die("fork");
            if (pid == 0) {
                execve("/bin/true", child_argv, child_env);
                _exit(127);
            }
            int status;
            if (waitpid(pid, &status, 0) < 0)
                die("waitpid");
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "/bin/true failed (status %d)\n", status);
                return 1;
            }
        }
        ops++;
    } while ((t = now_s()) < end);
    report(ops, t - start);
    return 0;
}
