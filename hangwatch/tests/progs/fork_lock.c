// A lock copied by fork(): a thread of the parent holds a lock while the main thread forks;
// the single-threaded child then waits on its copy, which no thread of the child will release.
//
//   fork_lock            the child locks a pthread mutex held (in the copy) by the parent's
//                        thread: the owner tid in the word is not a thread of the child;
//   fork_lock sem        the child waits on a process-private semaphore nobody in it posts;
//   fork_lock handler    the same, but the child catches SIGUSR1: a handler may end it.
// ready line: ready child=PID owner=TID
#define _GNU_SOURCE
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static sem_t held, sem;
static volatile pid_t owner;

static void *holder(void *arg) {
    (void)arg;
    pthread_mutex_lock(&m);
    owner = (pid_t)syscall(SYS_gettid);
    sem_post(&held);
    for (;;) pause();
    return NULL;
}

static void on_usr1(int s) { (void)s; }

static void work(double secs) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    volatile unsigned long x = 0;
    do {
        for (int i = 0; i < 100000; i++) x += i;
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9 < secs);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "mutex";
    sem_init(&held, 0, 0);
    sem_init(&sem, 0, 0);
    pthread_t t;
    if (pthread_create(&t, NULL, holder, NULL) != 0) return 1;
    sem_wait(&held);
    pid_t child = fork();
    if (child == 0) {
        if (strcmp(mode, "handler") == 0) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_usr1;
            sigaction(SIGUSR1, &sa, NULL);
        }
        work(1.2); /* the child does something before it waits */
        if (strcmp(mode, "mutex") == 0) pthread_mutex_lock(&m);
        else sem_wait(&sem);
        _exit(0);
    }
    printf("ready child=%d owner=%d\n", (int)child, (int)owner);
    fflush(stdout);
    for (;;) pause();
}
