/* Like mem_brk_retain (a ~1 GiB brk heap of 1 KiB objects, all freed but the newest,
 * which pins the top of the heap), then on SIGUSR1 calls malloc_trim(0): glibc gives the
 * free pages in the middle of the heap back with madvise(MADV_DONTNEED). The heap keeps
 * its size (brk does not move) but its memory goes back to the system.
 *
 * ready line: ready heap=<bytes the brk heap grew by>
 * After SIGUSR1 and the trim it prints "trimmed" (the harness only reads the first line)
 * and idles.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define OBJ_SIZE 1024
#define TOTAL (1024UL * 1024 * 1024)

int main(void)
{
	sigset_t set;
	int sig;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);

	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	char *brk0 = sbrk(0);
	size_t n = TOTAL / OBJ_SIZE;
	char **objs = mmap(NULL, n * sizeof *objs, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (objs == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		objs[i] = malloc(OBJ_SIZE);
		if (!objs[i]) {
			perror("malloc");
			return 1;
		}
		memset(objs[i], 0x5a, OBJ_SIZE);
	}
	for (size_t i = 0; i + 1 < n; i++)
		free(objs[i]);
	munmap(objs, n * sizeof *objs);
	printf("ready heap=%lu\n", (unsigned long)((char *)sbrk(0) - brk0));
	fflush(stdout);

	if (sigwait(&set, &sig) != 0)
		return 1;
	malloc_trim(0);
	printf("trimmed heap=%lu\n", (unsigned long)((char *)sbrk(0) - brk0));
	fflush(stdout);
	for (;;)
		pause();
}
