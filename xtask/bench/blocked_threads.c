/* blocked_threads: many threads blocked at once, each in an infinite FUTEX_WAIT.
 *
 *   blocked_threads cycle N HOLD_SECONDS
 *       start N threads, let them block, hold them blocked for HOLD_SECONDS, then wake them
 *       all at once (one FUTEX_WAKE) and join them. Prints threads per second through the
 *       start + wake + exit phases (the hold is not counted); the phase times go to stderr.
 *   blocked_threads park N
 *       start N threads, let them block, print "ready" on stdout, then wait for stdin to
 *       close; wake and join them, and exit.
 *
 * Stacks are 64 KiB so 10,000 threads stay well within memory limits. */
#include "common.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic int gate;
static _Atomic int started;

static void *blocker(void *arg)
{
    atomic_fetch_add(&started, 1);
    while (atomic_load(&gate) == 0)
        syscall(SYS_futex, &gate, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    return arg;
}

static pthread_t *start_threads(int n)
{
    pthread_t *th = calloc((size_t)n, sizeof *th);
    if (!th)
        die("calloc");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (int i = 0; i < n; i++) {
        int err = pthread_create(&th[i], &attr, blocker, NULL);
        if (err) {
            errno = err;
            fprintf(stderr, "thread %d of %d: ", i + 1, n);
            die("pthread_create");
        }
    }
    while (atomic_load(&started) < n)
        usleep(1000);
    /* Every thread has announced itself; give the last ones time to reach FUTEX_WAIT. */
    usleep(50 * 1000);
    return th;
}

static void release(pthread_t *th, int n)
{
    atomic_store(&gate, 1);
    syscall(SYS_futex, &gate, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    free(th);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    int n = argc > 2 ? atoi(argv[2]) : 0;
    if (n <= 0 || (strcmp(mode, "cycle") && strcmp(mode, "park"))) {
        fprintf(stderr, "usage: blocked_threads cycle N HOLD_SECONDS | park N\n");
        return 2;
    }
    if (!strcmp(mode, "park")) {
        pthread_t *th = start_threads(n);
        printf("ready\n");
        fflush(stdout);
        char buf[64];
        while (read(0, buf, sizeof buf) > 0)
            ;
        release(th, n);
        return 0;
    }
    double hold = arg_seconds(argc, argv, 3);
    double t0 = now_s();
    pthread_t *th = start_threads(n);
    double t1 = now_s();
    struct timespec ts = {(time_t)hold, (long)((hold - (double)(time_t)hold) * 1e9)};
    nanosleep(&ts, NULL);
    double t2 = now_s();
    release(th, n);
    double t3 = now_s();
    fprintf(stderr, "start %.3f s, hold %.3f s, wake+join %.3f s\n", t1 - t0, t2 - t1, t3 - t2);
    report((unsigned long long)n, (t1 - t0) + (t3 - t2));
    return 0;
}
