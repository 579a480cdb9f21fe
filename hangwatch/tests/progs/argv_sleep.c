/* Sleeps in pause() forever with whatever argv it was given: the test passes
 * a command line of up to 2 MB to check that hangwatch reads a bounded part
 * of it.
 *
 * ready line: ready argc=<n> argv_bytes=<total bytes of argv with NULs>
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t bytes = 0;
	for (int i = 0; i < argc; i++)
		bytes += strlen(argv[i]) + 1;
	printf("ready argc=%d argv_bytes=%zu\n", argc, bytes);
	fflush(stdout);
	for (;;)
		pause();
}
