/* Two threads (main and one worker) hand a token back and forth with
 * FUTEX_WAIT_PRIVATE / FUTEX_WAKE_PRIVATE as fast as they can: hundreds of
 * thousands of short futex waits per second, none of them long. Runs until
 * killed. Main never blocks for long (it is one of the two players).
 *
 * ready line: ready rounds=<n> (printed after the first 10000 hand-offs)
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic uint32_t turn; /* whose turn it is: 0 = main, 1 = worker */
static _Atomic unsigned long rounds;

static void play(uint32_t me, int report)
{
	for (;;) {
		uint32_t cur;
		while ((cur = atomic_load(&turn)) != me)
			syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, cur, NULL, NULL, 0);
		atomic_store(&turn, 1 - me);
		syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
		unsigned long n = atomic_fetch_add(&rounds, 1) + 1;
		if (report && n >= 10000) {
			report = 0;
			printf("ready rounds=%lu\n", n);
			fflush(stdout);
		}
	}
}

static void *worker(void *arg)
{
	(void)arg;
	play(1, 0);
	return NULL;
}

int main(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, worker, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	play(0, 1);
	return 0;
}
