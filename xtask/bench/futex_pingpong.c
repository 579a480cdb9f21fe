/* futex_pingpong SECONDS: two threads hand a token back and forth with FUTEX_WAIT and
 * FUTEX_WAKE; every hand-off puts one thread to sleep and wakes it (one sched_waking).
 * Prints round trips per second.
 *
 * Both threads are pinned to CPU 0. Free to move over the two vCPUs of the reference VM, each
 * hand-off waits for an IPI to wake a halted vCPU and the rate varies by +-20% from run to
 * run (138k-197k round trips/s in six runs on a quiet machine); on one CPU every hand-off is
 * a wake-up plus a context switch, the probe still runs on every one of them, and the rate
 * varies by about +-5%. */
#include "common.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic int turn;           /* 0 or 1: whose turn it is; 2: stop */
static unsigned long long trips;

static void futex_wait(_Atomic int *addr, int val)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic int *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *player(void *arg)
{
    int me = (int)(long)arg;
    for (;;) {
        int t;
        while ((t = atomic_load(&turn)) != me) {
            if (t == 2)
                return NULL;
            futex_wait(&turn, t);
        }
        if (me == 0)
            trips++;
        atomic_store(&turn, 1 - me);
        futex_wake(&turn);
    }
}

int main(int argc, char **argv)
{
    double secs = arg_seconds(argc, argv, 1);
    cpu_set_t cpu0;
    CPU_ZERO(&cpu0);
    CPU_SET(0, &cpu0);
    if (sched_setaffinity(0, sizeof cpu0, &cpu0)) /* inherited by both threads */
        die("sched_setaffinity");
    pthread_t a, b;
    double start = now_s();
    if (pthread_create(&a, NULL, player, (void *)0L) || pthread_create(&b, NULL, player, (void *)1L))
        die("pthread_create");
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&turn, 2);
    double end = now_s();
    unsigned long long done = trips;
    syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 2, NULL, NULL, 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    report(done, end - start);
    return 0;
}
