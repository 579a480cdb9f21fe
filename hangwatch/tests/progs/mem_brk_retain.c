/* Grows the brk heap to ~1 GiB with 1 KiB mallocs, then frees every object but the
 * newest. The newest sits at the top of the heap, so glibc cannot trim the heap (free()
 * only gives back the top), and the freed pages in the middle stay resident: ~1 GiB of
 * anonymous memory the process no longer uses and never gives back.
 *
 * 1 KiB is far below the mmap threshold (fixed at 128 KiB here so that glibc's dynamic
 * threshold cannot move it), so every object comes from the brk heap.
 *
 * ready line: ready heap=<bytes the brk heap grew by> objects=<n>
 */
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define OBJ_SIZE 1024
#define TOTAL (1024UL * 1024 * 1024)

int main(void)
{
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	char *brk0 = sbrk(0);
	size_t n = TOTAL / OBJ_SIZE;
	/* The pointer array itself is mmap'd, outside the heap. */
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
	char *brk1 = sbrk(0);
	printf("ready heap=%lu objects=%zu\n", (unsigned long)(brk1 - brk0), n);
	fflush(stdout);
	for (;;)
		pause();
}
