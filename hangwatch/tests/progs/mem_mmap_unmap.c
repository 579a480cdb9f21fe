/* Maps 1 GiB of anonymous memory and touches every page; on SIGUSR1 unmaps it all and
 * idles. Its RSS goes up by 1 GiB and back down: memory that was given back.
 *
 * ready line: ready mapped=<bytes>
 */
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIZE (1024UL * 1024 * 1024)

int main(void)
{
	sigset_t set;
	int sig;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);

	char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	long page = sysconf(_SC_PAGESIZE);
	for (unsigned long off = 0; off < SIZE; off += page)
		p[off] = 1;
	printf("ready mapped=%lu\n", SIZE);
	fflush(stdout);

	if (sigwait(&set, &sig) != 0)
		return 1;
	if (munmap(p, SIZE) != 0) {
		perror("munmap");
		return 1;
	}
	printf("unmapped\n");
	fflush(stdout);
	for (;;)
		pause();
}
