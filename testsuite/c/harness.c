/* Generic test harness for kerf-generated objects (any number of models,
 * any target: built with cc or a cross gcc, run natively or under qemu).
 *
 * Usage: harness NAME DIR [NAME DIR ...]
 * For each pair, the model NAME (an entry of harness_models, see harness.h)
 * reads input i from DIR/in<i>.bin (exactly the descriptor's byte count),
 * runs with a fresh 64-byte-aligned arena of arena_bytes (the header's
 * <NAME>_ARENA_BYTES) and writes output i to DIR/out<i>.bin. One line per
 * case on stdout: "ok NAME" or "fail NAME reason", flushed before the next
 * case starts, so a caller can tell which case crashed the process.
 *
 * Guards: by default every output buffer and the arena sit between two
 * GUARD-byte canary regions, the arena's interior is poisoned (not zeroed,
 * so a kernel that relies on zero-initialised scratch gives wrong outputs),
 * and inputs are checked to be unchanged after the run; a write outside what
 * a kernel owns fails the case ("canary ..."). With KERF_HARNESS_VALGRIND=1
 * buffers are allocated at their exact sizes, unpoisoned and unguarded, so
 * memcheck itself sees every out-of-bounds access and uninitialised read.
 *
 * Threads: with KERF_THREADS=N (N > 1) every run gets the runtime of one
 * pthread pool of N threads (runtime/c/kerf_pool.c), so split kernels run
 * through parallel_for; otherwise rt = {KERF_ABI_VERSION, 1, NULL, NULL}. */
#define _POSIX_C_SOURCE 200112L /* posix_memalign */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"
#include "kerf_pool.h"

#define PATH_MAX_LEN 4096

static const harness_model *find(const char *name) {
    for (const harness_model *m = harness_models; m->name; m++)
        if (strcmp(m->name, name) == 0) return m;
    return NULL;
}

#define GUARD 64
#define CANARY 0xA5
#define POISON 0x5A

static int valgrind_mode(void) {
    const char *v = getenv("KERF_HARNESS_VALGRIND");
    return v && strcmp(v, "1") == 0;
}

/* A 64-byte aligned buffer of `bytes` with canary regions on both sides
 * (none in valgrind mode); `fill` initialises the interior. Free with
 * guarded_free. */
static void *guarded_alloc(uint64_t bytes, int fill) {
    if (valgrind_mode()) {
        /* exactly `bytes` (posix_memalign, unlike aligned_alloc, takes any
           size), uninitialised unless asked, so memcheck sees every byte
           beyond the buffer and every uninitialised read */
        void *p = NULL;
        if (posix_memalign(&p, 64, bytes ? (size_t)bytes : 1) != 0) return NULL;
        if (fill >= 0) memset(p, fill, (size_t)bytes);
        return p;
    }
    size_t n = (size_t)((bytes + 63) / 64 * 64) + 2 * GUARD;
    unsigned char *p = aligned_alloc(64, n);
    if (!p) return NULL;
    memset(p, CANARY, n);
    if (fill >= 0) memset(p + GUARD, fill, (size_t)bytes);
    return p + GUARD;
}

static void guarded_free(void *p) {
    if (!p) return;
    free(valgrind_mode() ? p : (unsigned char *)p - GUARD);
}

/* NULL when the canaries around `p` (of `bytes`) are intact, else which side broke. */
static const char *guard_broken(const void *p, uint64_t bytes) {
    if (valgrind_mode() || !p) return NULL;
    const unsigned char *b = (const unsigned char *)p;
    size_t end = (size_t)((bytes + 63) / 64 * 64);
    for (size_t i = 0; i < GUARD; i++)
        if (b[-(long)GUARD + (long)i] != CANARY) return "before";
    /* the padding up to the next 64 bytes belongs to nobody either */
    for (size_t i = (size_t)bytes; i < end + GUARD; i++)
        if (b[i] != CANARY) return "after";
    return NULL;
}

/* The pool of KERF_THREADS threads, or NULL (single-threaded). */
static kerf_pool *pool;
static unsigned long pf_calls;

/* The pool's parallel_for, counted (reported on stderr per case). */
static void counting_parallel_for(void *ctx, uint32_t n, void (*task)(void *arg, uint32_t i), void *arg) {
    pf_calls++;
    kerf_pool_parallel_for(ctx, n, task, arg);
}

/* Returns NULL on success, else a static message. */
static const char *run_case(const harness_model *m, const char *dir) {
    static char msg[PATH_MAX_LEN + 128];
    char path[PATH_MAX_LEN];
    const kerf_model_desc *d = m->describe();
    if (!d) return "describe() returned NULL";
    if (d->abi_version != KERF_ABI_VERSION) return "ABI version mismatch";
    if (d->arena_align != 64) return "arena_align is not 64";
    const void **ins = calloc(d->num_inputs + 1, sizeof(void *));
    void **outs = calloc(d->num_outputs + 1, sizeof(void *));
    void *arena = guarded_alloc(d->arena_bytes, valgrind_mode() ? -1 : POISON);
    const char *err = NULL;
    if (!ins || !outs || !arena) return "out of memory";
    for (uint32_t i = 0; i < d->num_inputs && !err; i++) {
        void *p = guarded_alloc(d->inputs[i].bytes, 0);
        ins[i] = p;
        snprintf(path, sizeof path, "%s/in%u.bin", dir, (unsigned)i);
        FILE *f = fopen(path, "rb");
        if (!p || !f) {
            snprintf(msg, sizeof msg, "cannot read %s", path);
            err = msg;
            if (f) fclose(f);
            break;
        }
        size_t got = fread(p, 1, (size_t)d->inputs[i].bytes, f);
        int extra = fgetc(f) != EOF;
        fclose(f);
        if (got != d->inputs[i].bytes || extra) {
            snprintf(msg, sizeof msg, "%s: expected exactly %llu bytes", path,
                     (unsigned long long)d->inputs[i].bytes);
            err = msg;
        }
    }
    for (uint32_t i = 0; i < d->num_outputs && !err; i++) {
        /* outputs start poisoned too: every element must be written */
        outs[i] = guarded_alloc(d->outputs[i].bytes, valgrind_mode() ? -1 : POISON);
        if (!outs[i]) err = "out of memory";
    }
    /* copies of the inputs, to prove the model does not write them */
    void **copies = calloc(d->num_inputs + 1, sizeof(void *));
    if (!copies) err = "out of memory";
    for (uint32_t i = 0; i < d->num_inputs && !err; i++) {
        copies[i] = malloc((size_t)d->inputs[i].bytes + 1);
        if (!copies[i]) err = "out of memory";
        else memcpy(copies[i], ins[i], (size_t)d->inputs[i].bytes);
    }
    if (!err) {
        kerf_runtime rt = {KERF_ABI_VERSION, 1, 0, 0};
        if (pool) {
            rt = kerf_pool_runtime(pool);
            rt.parallel_for = counting_parallel_for;
            pf_calls = 0;
        }
        int32_t st = m->run(ins, (void *const *)outs, arena, &rt);
        if (pool) fprintf(stderr, "%s: %lu parallel_for calls\n", m->name, pf_calls);
        if (st != KERF_STATUS_OK) {
            snprintf(msg, sizeof msg, "run returned status %d", (int)st);
            err = msg;
        }
    }
    if (!err) {
        const char *side = guard_broken(arena, d->arena_bytes);
        if (side) {
            snprintf(msg, sizeof msg, "canary %s the arena (%llu bytes) overwritten", side,
                     (unsigned long long)d->arena_bytes);
            err = msg;
        }
    }
    for (uint32_t i = 0; i < d->num_outputs && !err; i++) {
        const char *side = guard_broken(outs[i], d->outputs[i].bytes);
        if (side) {
            snprintf(msg, sizeof msg, "canary %s output %u ('%s', %llu bytes) overwritten", side, (unsigned)i,
                     d->outputs[i].name, (unsigned long long)d->outputs[i].bytes);
            err = msg;
        }
    }
    for (uint32_t i = 0; i < d->num_inputs && !err; i++) {
        const char *side = guard_broken(ins[i], d->inputs[i].bytes);
        if (side) {
            snprintf(msg, sizeof msg, "canary %s input %u ('%s') overwritten", side, (unsigned)i, d->inputs[i].name);
            err = msg;
        } else if (memcmp(copies[i], ins[i], (size_t)d->inputs[i].bytes) != 0) {
            snprintf(msg, sizeof msg, "input %u ('%s') was modified", (unsigned)i, d->inputs[i].name);
            err = msg;
        }
    }
    for (uint32_t i = 0; copies && i < d->num_inputs; i++) free(copies[i]);
    free(copies);
    for (uint32_t i = 0; i < d->num_outputs && !err; i++) {
        snprintf(path, sizeof path, "%s/out%u.bin", dir, (unsigned)i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(outs[i], 1, (size_t)d->outputs[i].bytes, f) != d->outputs[i].bytes) {
            snprintf(msg, sizeof msg, "cannot write %s", path);
            err = msg;
        }
        if (f) fclose(f);
    }
    for (uint32_t i = 0; i < d->num_inputs; i++) guarded_free((void *)ins[i]);
    for (uint32_t i = 0; i < d->num_outputs; i++) guarded_free(outs[i]);
    free(ins);
    free(outs);
    guarded_free(arena);
    return err;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc % 2 != 1) {
        fprintf(stderr, "usage: %s NAME DIR [NAME DIR ...]\n", argv[0]);
        return 2;
    }
    const char *threads = getenv("KERF_THREADS");
    if (threads && atoi(threads) > 1) {
        pool = kerf_pool_create((uint32_t)atoi(threads));
        if (!pool) {
            fprintf(stderr, "cannot create a pool of %s threads\n", threads);
            return 2;
        }
    }
    for (int a = 1; a + 1 < argc; a += 2) {
        const harness_model *m = find(argv[a]);
        const char *err = m ? run_case(m, argv[a + 1]) : "no such model linked";
        if (err)
            printf("fail %s %s\n", argv[a], err);
        else
            printf("ok %s\n", argv[a]);
        fflush(stdout);
    }
    kerf_pool_destroy(pool);
    return 0;
}
