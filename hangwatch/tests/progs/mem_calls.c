/* A known sequence of memory system calls, run when SIGUSR1 arrives (after hangwatch has
 * attached): 10 brk grows of 1 MiB, 3 shrinks of 1 MiB; 5 times an 8 MiB anonymous mmap,
 * madvise(MADV_DONTNEED) of its first 4 MiB, munmap of all 8 MiB; one 1 MiB anonymous map
 * grown to 3 MiB by mremap; one file mapping (not anonymous) of 64 KiB, left mapped. Then it
 * idles. No malloc after the signal (stdio is flushed before), so no hidden brk.
 *
 * ready line: ready
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB (1024L * 1024)

int main(void)
{
	sigset_t set;
	int sig;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int fd = open("/proc/self/exe", O_RDONLY);
	printf("ready\n");
	fflush(stdout);
	if (sigwait(&set, &sig) != 0)
		return 1;
	for (int i = 0; i < 10; i++)
		if (sbrk(MIB) == (void *)-1)
			return 2;
	for (int i = 0; i < 3; i++)
		if (sbrk(-MIB) == (void *)-1)
			return 3;
	for (int i = 0; i < 5; i++) {
		char *p = mmap(NULL, 8 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return 4;
		p[0] = 1;
		madvise(p, 4 * MIB, MADV_DONTNEED);
		munmap(p, 8 * MIB);
	}
	void *q = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q == MAP_FAILED || mremap(q, MIB, 3 * MIB, MREMAP_MAYMOVE) == MAP_FAILED)
		return 5;
	if (fd < 0 || mmap(NULL, 65536, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED)
		return 6;
	write(1, "done\n", 5);
	for (;;)
		pause();
}
