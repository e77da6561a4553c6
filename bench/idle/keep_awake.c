// One SCHED_IDLE spinner pinned to CPU N: it runs only when nothing else wants that CPU, so the
// vCPU never halts. Used to measure what the VM's halt/wake costs the pipeline (bench/README.md,
// "What an idle vCPU costs"). Build: cc -O2 -o /tmp/keep_awake bench/idle/keep_awake.c
// Run one per CPU for the length of a measurement: /tmp/keep_awake 0 & /tmp/keep_awake 1 &
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: keep_awake CPU\n");
        return 2;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(atoi(argv[1]), &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) perror("sched_setaffinity");
    const struct sched_param param = {0};
    if (sched_setscheduler(0, SCHED_IDLE, &param) != 0) {
        perror("sched_setscheduler(SCHED_IDLE)");
        return 1;
    }
    for (volatile unsigned long spins = 0;; ++spins) {
    }
}
