/* Memory held in the shapes that the not_returned verdict must tell apart.
 *
 *   mem_retain MODE [MIB]      (MIB defaults to 512)
 *
 * free-top  grows the brk heap by MIB with 1 KiB objects, frees every object but the newest
 *           (which pins the top of the heap: glibc cannot trim it) and idles. The freed pages
 *           stay resident. On SIGUSR1 it calls malloc_trim(0), which gives them back.
 * trim      the same, then malloc_trim(0) before it is ready: nothing left to flag.
 * arena     the same as free-top, done by a second thread: the objects come from a glibc
 *           thread arena (64 MiB-aligned mmap'd heaps), not from the brk heap.
 * table     allocates MIB of 1 KiB rows, keeps them all (a loaded table) and idles: live
 *           data that sits idle.
 * cache     allocates MIB of 1 KiB rows, keeps them all and reads every row every 200 ms:
 *           live data in use.
 *
 * 1 KiB is far below the mmap threshold (fixed at 128 KiB so that glibc's dynamic threshold
 * cannot move it), so every object comes from the heap of the allocating thread's arena.
 *
 * ready line: ready mib=<MIB> heap=<bytes the brk heap grew by>
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define OBJ_SIZE 1024

static size_t n_objs;
static char **objs;
static volatile uint64_t sink;

static void grow(void)
{
	objs = mmap(NULL, n_objs * sizeof *objs, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (objs == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	for (size_t i = 0; i < n_objs; i++) {
		objs[i] = malloc(OBJ_SIZE);
		if (!objs[i]) {
			perror("malloc");
			exit(1);
		}
		memset(objs[i], (int)(i & 0x7f) + 1, OBJ_SIZE);
	}
}

/* Frees every object but the newest: it sits at the top of the heap and pins it. */
static void free_all_but_top(void)
{
	for (size_t i = 0; i + 1 < n_objs; i++)
		free(objs[i]);
	munmap(objs, n_objs * sizeof *objs);
	objs = NULL;
}

static void *arena_thread(void *arg)
{
	(void)arg;
	grow();
	free_all_but_top();
	return NULL;
}

static void read_all(void)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < n_objs; i++)
		for (size_t j = 0; j < OBJ_SIZE; j += sizeof(uint64_t))
			sum += *(uint64_t *)(objs[i] + j);
	sink += sum;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: mem_retain free-top|trim|arena|table|cache [MIB]\n");
		return 2;
	}
	const char *mode = argv[1];
	unsigned long mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 512;
	n_objs = mib * 1024 * 1024 / OBJ_SIZE;

	sigset_t set;
	int sig;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);

	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	char *brk0 = sbrk(0);
	if (!strcmp(mode, "free-top") || !strcmp(mode, "trim")) {
		grow();
		free_all_but_top();
		if (!strcmp(mode, "trim"))
			malloc_trim(0);
	} else if (!strcmp(mode, "arena")) {
		pthread_t t;
		if (pthread_create(&t, NULL, arena_thread, NULL) != 0 ||
		    pthread_join(t, NULL) != 0) {
			fprintf(stderr, "thread failed\n");
			return 1;
		}
	} else if (!strcmp(mode, "table") || !strcmp(mode, "cache")) {
		grow();
	} else {
		fprintf(stderr, "mem_retain: unknown mode %s\n", mode);
		return 2;
	}
	printf("ready mib=%lu heap=%lu\n", mib, (unsigned long)((char *)sbrk(0) - brk0));
	fflush(stdout);

	if (!strcmp(mode, "cache")) {
		struct timespec ts = { 0, 200 * 1000 * 1000 };
		for (;;) {
			read_all();
			nanosleep(&ts, NULL);
		}
	}
	if (!strcmp(mode, "free-top")) {
		if (sigwait(&set, &sig) != 0)
			return 1;
		malloc_trim(0);
		printf("trimmed\n");
		fflush(stdout);
	}
	for (;;)
		pause();
}
