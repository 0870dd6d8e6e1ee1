/* Generic test harness for kerf-generated objects (any number of models,
 * any target: built with cc or a cross gcc, run natively or under qemu).
 *
 * Usage: harness NAME DIR [NAME DIR ...]
 * For each pair, the model NAME (an entry of harness_models, see harness.h)
 * reads input i from DIR/in<i>.bin (exactly the descriptor's byte count),
 * runs with a fresh 64-byte-aligned arena of arena_bytes (the header's
 * <NAME>_ARENA_BYTES) and writes output i to DIR/out<i>.bin. One line per
 * case on stdout: "ok NAME" or "fail NAME reason", flushed before the next
 * case starts, so a caller can tell which case crashed the process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"

#define PATH_MAX_LEN 4096

static const harness_model *find(const char *name) {
    for (const harness_model *m = harness_models; m->name; m++)
        if (strcmp(m->name, name) == 0) return m;
    return NULL;
}

/* 64-byte aligned, at least 64 bytes (so empty tensors get a non-NULL pointer). */
static void *alloc64(uint64_t bytes) {
    size_t n = (size_t)((bytes + 63) / 64 * 64);
    if (n == 0) n = 64;
    void *p = aligned_alloc(64, n);
    if (p) memset(p, 0, n);
    return p;
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
    void *arena = alloc64(d->arena_bytes);
    const char *err = NULL;
    if (!ins || !outs || !arena) return "out of memory";
    for (uint32_t i = 0; i < d->num_inputs && !err; i++) {
        void *p = alloc64(d->inputs[i].bytes);
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
        outs[i] = alloc64(d->outputs[i].bytes);
        if (!outs[i]) err = "out of memory";
    }
    if (!err) {
        kerf_runtime rt = {KERF_ABI_VERSION, 1, 0, 0};
        int32_t st = m->run(ins, (void *const *)outs, arena, &rt);
        if (st != KERF_STATUS_OK) {
            snprintf(msg, sizeof msg, "run returned status %d", (int)st);
            err = msg;
        }
    }
    for (uint32_t i = 0; i < d->num_outputs && !err; i++) {
        snprintf(path, sizeof path, "%s/out%u.bin", dir, (unsigned)i);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(outs[i], 1, (size_t)d->outputs[i].bytes, f) != d->outputs[i].bytes) {
            snprintf(msg, sizeof msg, "cannot write %s", path);
            err = msg;
        }
        if (f) fclose(f);
    }
    for (uint32_t i = 0; i < d->num_inputs; i++) free((void *)ins[i]);
    for (uint32_t i = 0; i < d->num_outputs; i++) free(outs[i]);
    free(ins);
    free(outs);
    free(arena);
    return err;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc % 2 != 1) {
        fprintf(stderr, "usage: %s NAME DIR [NAME DIR ...]\n", argv[0]);
        return 2;
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
    return 0;
}
