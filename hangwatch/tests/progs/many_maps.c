/* Maps one page of a file with a long path N times (MAP_SHARED, every time
 * at offset 0, so the kernel cannot merge them: /proc/PID/maps has N lines,
 * each with the whole path), then waits forever on a process-shared futex in
 * the last mapping made.
 *
 * usage: many_maps PATH N
 * ready line: ready maps=<n> uaddr=0x..
 */
#include <fcntl.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: many_maps PATH N\n");
		return 2;
	}
	long n = atol(argv[2]);
	int fd = open(argv[1], O_RDWR | O_CREAT, 0600);
	if (fd < 0 || ftruncate(fd, 4096) != 0) {
		perror("many_maps: open");
		return 1;
	}
	uint32_t *word = NULL;
	for (long i = 0; i < n; i++) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			perror("many_maps: mmap");
			return 1;
		}
		word = p;
	}
	*word = 0;
	printf("ready maps=%ld uaddr=%p\n", n, (void *)word);
	fflush(stdout);
	for (;;)
		syscall(SYS_futex, word, FUTEX_WAIT, 0, NULL, NULL, 0);
}
