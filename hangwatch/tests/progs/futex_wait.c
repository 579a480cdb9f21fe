/* Two threads park forever in FUTEX_WAIT_PRIVATE on two different words.
 *
 * The worker waits first; main confirms through /proc that the worker is
 * inside futex(2), prints the ready line, then waits itself.
 *
 * With more than one CPU allowed, main is pinned to the first and the worker
 * to the last one, so the two waits start on different CPUs: per-CPU clocks
 * (the scheduler's task clock leaves out each CPU's own steal/IRQ time) must
 * be converted per CPU.
 *
 * ready line: ready tid=<worker tid> main_uaddr=0x.. worker_uaddr=0x..
 *             main_cpu=<n|-1> worker_cpu=<n|-1>
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint32_t main_word;   /* stays 0: FUTEX_WAIT with val 0 never returns */
static uint32_t worker_word; /* likewise */
static _Atomic long worker_tid;
static int main_cpu = -1, worker_cpu = -1;

static void pin(int cpu)
{
	if (cpu < 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
		fprintf(stderr, "futex_wait: cannot pin to CPU %d\n", cpu);
		exit(1);
	}
}

/* First and last CPU of the allowed set, if there are at least two. */
static void choose_cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2)
		return;
	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (CPU_ISSET(c, &set)) {
			if (main_cpu < 0)
				main_cpu = c;
			worker_cpu = c;
		}
	}
}

static void wait_forever(uint32_t *word)
{
	for (;;) /* nobody wakes us; loop only over signals/spurious returns */
		syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

static void *worker(void *arg)
{
	(void)arg;
	pin(worker_cpu);
	atomic_store(&worker_tid, syscall(SYS_gettid));
	wait_forever(&worker_word);
	return NULL;
}

/* First field of /proc/self/task/TID/syscall is the syscall number. */
static long current_syscall(long tid)
{
	char path[64];
	long nr = -1;
	snprintf(path, sizeof path, "/proc/self/task/%ld/syscall", tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &nr) != 1)
		nr = -1;
	fclose(f);
	return nr;
}

int main(void)
{
	choose_cpus();
	pin(main_cpu);
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	long tid;
	while ((tid = atomic_load(&worker_tid)) == 0)
		sched_yield();
	struct timespec ms = { 0, 1000000 };
	for (int i = 0; current_syscall(tid) != SYS_futex; i++) {
		if (i > 5000) {
			fprintf(stderr, "futex_wait: worker never entered futex\n");
			return 1;
		}
		nanosleep(&ms, NULL);
	}
	printf("ready tid=%ld main_uaddr=%p worker_uaddr=%p main_cpu=%d worker_cpu=%d\n", tid,
	       (void *)&main_word, (void *)&worker_word, main_cpu, worker_cpu);
	fflush(stdout);
	wait_forever(&main_word);
	return 0;
}
