/* kerf tune's measurement harness for --runner: compiled with one model's
 * object by the target's C compiler and run on the target (under qemu-user,
 * or on a board through ssh/adb), it talks through stdin/stdout only, so
 * any transport that forwards those works.
 *
 *   bench N ITERS < samples > outputs
 *
 * stdin:  N samples, each the model's inputs' bytes in input order.
 * stdout: for each sample, every output's bytes in output order.
 * stderr: "kerf-bench median_ms <ms>" after ITERS timed runs of sample 0
 *         (ITERS/4 + 1 untimed runs before), or an error line; exit 1 on error.
 * Built with -DKERF_RUN=<name>_run -DKERF_DESCRIBE=<name>_describe and the
 * model's header as "model.h". Single-threaded, no heap but the buffers. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

static int fail(const char *what) {
    fprintf(stderr, "kerf-bench error: %s\n", what);
    return 1;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *aligned(uint64_t bytes, uint64_t align) {
    void *p = NULL;
    if (align < sizeof(void *)) align = sizeof(void *);
    if (posix_memalign(&p, (size_t)align, bytes ? (size_t)bytes : 1) != 0) return NULL;
    return p;
}

int main(int argc, char **argv) {
    if (argc != 3) return fail("usage: bench N ITERS < samples > outputs");
    long n = strtol(argv[1], NULL, 10), iters = strtol(argv[2], NULL, 10);
    if (n < 1 || iters < 1) return fail("N and ITERS must be positive");
    const kerf_model_desc *d = KERF_DESCRIBE();
    if (!d || d->abi_version != KERF_ABI_VERSION) return fail("describe() failed or ABI mismatch");
    uint64_t in_bytes = 0, out_bytes = 0;
    for (uint32_t i = 0; i < d->num_inputs; i++) in_bytes += d->inputs[i].bytes;
    for (uint32_t i = 0; i < d->num_outputs; i++) out_bytes += d->outputs[i].bytes;
    unsigned char *ins = aligned(in_bytes * (uint64_t)n, 64);
    unsigned char *outs = aligned(out_bytes, 64);
    void *arena = aligned(d->arena_bytes, d->arena_align ? d->arena_align : 64);
    const void **ip = calloc(d->num_inputs + 1, sizeof(void *));
    void **op = calloc(d->num_outputs + 1, sizeof(void *));
    if (!ins || !outs || !arena || !ip || !op) return fail("out of memory");
    if (fread(ins, 1, (size_t)(in_bytes * (uint64_t)n), stdin) != (size_t)(in_bytes * (uint64_t)n))
        return fail("stdin holds fewer bytes than N samples");
    uint64_t off = 0;
    for (uint32_t i = 0; i < d->num_outputs; i++) {
        op[i] = outs + off;
        off += d->outputs[i].bytes;
    }
    kerf_runtime rt = {KERF_ABI_VERSION, 1, 0, 0};
    for (long s = 0; s < n; s++) {
        off = 0;
        for (uint32_t i = 0; i < d->num_inputs; i++) {
            ip[i] = ins + (uint64_t)s * in_bytes + off;
            off += d->inputs[i].bytes;
        }
        if (KERF_RUN((const void *const *)ip, (void *const *)op, arena, &rt) != KERF_STATUS_OK) return fail("run failed");
        if (fwrite(outs, 1, (size_t)out_bytes, stdout) != (size_t)out_bytes) return fail("cannot write stdout");
    }
    fflush(stdout);
    off = 0;
    for (uint32_t i = 0; i < d->num_inputs; i++) {
        ip[i] = ins + off;
        off += d->inputs[i].bytes;
    }
    for (long w = 0; w < iters / 4 + 1; w++) KERF_RUN((const void *const *)ip, (void *const *)op, arena, &rt);
    double *ms = malloc(sizeof(double) * (size_t)iters);
    if (!ms) return fail("out of memory");
    for (long k = 0; k < iters; k++) {
        double t0 = now_ms();
        KERF_RUN((const void *const *)ip, (void *const *)op, arena, &rt);
        ms[k] = now_ms() - t0;
    }
    qsort(ms, (size_t)iters, sizeof(double), cmp);
    double med = iters % 2 ? ms[iters / 2] : 0.5 * (ms[iters / 2 - 1] + ms[iters / 2]);
    fprintf(stderr, "kerf-bench median_ms %.9f\n", med);
    return 0;
}
