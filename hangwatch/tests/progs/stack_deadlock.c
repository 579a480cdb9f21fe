// Two threads in a pthread mutex deadlock, through functions with distinctive names, so that
// their stacks can be checked: hw_thread_one -> hw_lock_second -> pthread_mutex_lock.
// `ready t1=TID t2=TID`.
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t bar;
static pid_t tids[2];

__attribute__((noinline)) void hw_lock_second(pthread_mutex_t *m) {
    pthread_mutex_lock(m);
    __asm__ volatile("" ::: "memory"); // not a tail call
}

__attribute__((noinline)) void *hw_thread_one(void *x) {
    (void)x;
    tids[0] = syscall(SYS_gettid);
    pthread_mutex_lock(&a);
    pthread_barrier_wait(&bar);
    hw_lock_second(&b);
    return NULL;
}

__attribute__((noinline)) void *hw_thread_two(void *x) {
    (void)x;
    tids[1] = syscall(SYS_gettid);
    pthread_mutex_lock(&b);
    pthread_barrier_wait(&bar);
    hw_lock_second(&a);
    return NULL;
}

int main(void) {
    pthread_t t1, t2;
    pthread_barrier_init(&bar, NULL, 3);
    pthread_create(&t1, NULL, hw_thread_one, NULL);
    pthread_create(&t2, NULL, hw_thread_two, NULL);
    pthread_barrier_wait(&bar);
    usleep(100000);
    printf("ready t1=%d t2=%d\n", tids[0], tids[1]);
    fflush(stdout);
    pthread_join(t1, NULL);
    return 0;
}
