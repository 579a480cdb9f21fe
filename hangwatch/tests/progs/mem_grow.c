/* Grows its RSS by 3 MiB per second, forever (until 2 GiB, a safety stop): 64 KiB mallocs
 * (brk heap, below the mmap threshold), each written in full. The amount is paced by the
 * clock, not by sleeps, so scheduling delays do not change the average rate.
 *
 * ready line: ready rate=<bytes per second> chunk=<bytes>
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RATE (3UL * 1024 * 1024)
#define CHUNK (64 * 1024)
#define LIMIT (2048UL * 1024 * 1024)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	printf("ready rate=%lu chunk=%d\n", RATE, CHUNK);
	fflush(stdout);
	double t0 = now();
	unsigned long done = 0;
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	for (;;) {
		unsigned long want = (unsigned long)((now() - t0) * RATE);
		if (want > LIMIT)
			want = LIMIT;
		while (done + CHUNK <= want) {
			char *p = malloc(CHUNK);
			if (!p) {
				perror("malloc");
				return 1;
			}
			memset(p, 0x33, CHUNK);
			done += CHUNK;
		}
		nanosleep(&tick, NULL);
	}
}
