// Two threads take two mutexes in opposite order: each holds one and waits for the other.
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t bar;
static pid_t tids[2];

static void *one(void *x) {
    (void)x;
    tids[0] = syscall(SYS_gettid);
    pthread_mutex_lock(&a);
    pthread_barrier_wait(&bar);
    pthread_mutex_lock(&b);
    return NULL;
}

static void *two(void *x) {
    (void)x;
    tids[1] = syscall(SYS_gettid);
    pthread_mutex_lock(&b);
    pthread_barrier_wait(&bar);
    pthread_mutex_lock(&a);
    return NULL;
}

int main(void) {
    pthread_t t1, t2;
    pthread_barrier_init(&bar, NULL, 3);
    pthread_create(&t1, NULL, one, NULL);
    pthread_create(&t2, NULL, two, NULL);
    pthread_barrier_wait(&bar);
    usleep(100000);
    printf("ready t1=%d t2=%d\n", tids[0], tids[1]);
    fflush(stdout);
    pthread_join(t1, NULL);
    return 0;
}
