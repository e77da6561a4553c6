// bench/pagecache/copy.c: what the spool's pwritev pays to copy into the page cache, for new
// files (the spool's way: each segment a new file, deleted when acknowledged) against the same
// files overwritten in place. Writes `mib` MiB per file in 128 KiB pwrites, one every `pause_us`
// (6000: ~21 MB/s, the spool's rate at 100k events/s), over `rounds` files in turn among 3, with
// an fdatasync every 166 writes (about each second) when `sync` is 1. Prints the time spent in
// pwrite per byte for each file. Run by bench/pagecache/run; not part of the build.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: copy DIR new|overwrite MIB ROUNDS PAUSE_US SYNC\n");
        return 2;
    }
    const char* dir = argv[1];
    const int overwrite = strcmp(argv[2], "overwrite") == 0;
    const size_t bytes = (size_t)atoi(argv[3]) << 20;
    const int rounds = atoi(argv[4]);
    const int pause_us = atoi(argv[5]);
    const int sync = atoi(argv[6]);
    const size_t chunk = 128 << 10;
    char* buffer = malloc(chunk);
    memset(buffer, 'x', chunk);
    for (int round = 0; round < rounds; ++round) {
        char name[4096];
        snprintf(name, sizeof name, "%s/f%d", dir, round % 3);
        if (!overwrite) unlink(name);
        const int fd = open(name, O_CREAT | O_WRONLY, 0600);
        if (fd < 0) {
            perror(name);
            return 1;
        }
        double spent = 0;
        for (size_t off = 0, n = 0; off < bytes; off += chunk, ++n) {
            const double start = now();
            if (pwrite(fd, buffer, chunk, (off_t)off) != (ssize_t)chunk) {
                perror("pwrite");
                return 1;
            }
            spent += now() - start;
            usleep((useconds_t)pause_us);
            if (sync && n % 166 == 165) fdatasync(fd);
        }
        fdatasync(fd);
        close(fd);
        printf("%s sync=%d file %d: %.2f ns per byte\n", overwrite ? "overwrite" : "new", sync, round,
               spent * 1e9 / (double)bytes);
    }
    return 0;
}
