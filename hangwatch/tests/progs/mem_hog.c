/* Waits for SIGUSR1 (so the test can first move it into a memory-limited cgroup), then
 * allocates and writes 1 MiB after 1 MiB until the kernel OOM-kills it. Stops at 1 GiB
 * (a safety net if no limit applies) and idles, so the test sees that no kill happened.
 *
 * ready line: ready
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (1024 * 1024)
#define LIMIT (1024UL * 1024 * 1024)

int main(void)
{
	sigset_t set;
	int sig;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("ready\n");
	fflush(stdout);
	if (sigwait(&set, &sig) != 0)
		return 1;
	for (unsigned long done = 0; done < LIMIT; done += CHUNK) {
		char *p = malloc(CHUNK);
		if (!p)
			return 2;
		memset(p, 0x77, CHUNK);
	}
	fprintf(stderr, "mem_hog: allocated 1 GiB and was not killed\n");
	for (;;)
		pause();
}
