/* Test harness for kerf-generated objects.
 * Build: cc -DMODEL_HEADER='"model.h"' -DMODEL_NAME=model harness.c model.o
 * Run:   ./prog input.bin output.bin
 * input.bin holds every input's bytes back to back (descriptor order);
 * output.bin receives every output's bytes back to back.
 * Outputs start as GUARD bytes and have 64 more before and after them that
 * no kernel may write (exit 108 otherwise); the arena is poisoned with 0xFF bytes
 * (NaNs), so a kernel reading scratch it did not write shows in its
 * outputs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 0xA5
#include MODEL_HEADER

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define RUN CAT(MODEL_NAME, _run)
#define DESCRIBE CAT(MODEL_NAME, _describe)

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s input.bin output.bin\n", argv[0]);
        return 100;
    }
    const kerf_model_desc *d = DESCRIBE();
    if (d->abi_version != KERF_ABI_VERSION) return 101;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 102;
    const void **ins = calloc(d->num_inputs + 1, sizeof(void *));
    void **outs = calloc(d->num_outputs + 1, sizeof(void *));
    for (uint32_t i = 0; i < d->num_inputs; i++) {
        void *p = aligned_alloc(64, (d->inputs[i].bytes + 63) / 64 * 64 + 64);
        if (fread(p, 1, d->inputs[i].bytes, f) != d->inputs[i].bytes) return 103;
        ins[i] = p;
    }
    fclose(f);
    /* each output: 64 guard bytes, the output (rounded up to 64), 64 guard bytes */
    unsigned char **blocks = calloc(d->num_outputs + 1, sizeof(unsigned char *));
    for (uint32_t i = 0; i < d->num_outputs; i++) {
        size_t n = 64 + (d->outputs[i].bytes + 63) / 64 * 64 + 64;
        blocks[i] = aligned_alloc(64, n);
        memset(blocks[i], GUARD, n);
        outs[i] = blocks[i] + 64;
    }
    size_t arena_n = (d->arena_bytes + 63) / 64 * 64 + 64;
    void *arena = aligned_alloc(64, arena_n);
    memset(arena, 0xFF, arena_n);
    kerf_runtime rt = {KERF_ABI_VERSION, 1, 0, 0};
    int32_t st = RUN(ins, (void *const *)outs, arena, &rt);
    if (st != 0) {
        fprintf(stderr, "run returned %d\n", st);
        return 104;
    }
    for (uint32_t i = 0; i < d->num_outputs; i++) {
        for (size_t j = 0; j < 64; j++)
            if (blocks[i][j] != GUARD) {
                fprintf(stderr, "output %u: a store %zu bytes before its start\n", i, 64 - j);
                return 108;
            }
        const unsigned char *o = outs[i];
        size_t n = (d->outputs[i].bytes + 63) / 64 * 64 + 64;
        for (size_t j = d->outputs[i].bytes; j < n; j++)
            if (o[j] != GUARD) {
                fprintf(stderr, "output %u: a store %zu bytes past its end\n", i, j - d->outputs[i].bytes);
                return 108;
            }
    }
    /* the NULL checks must work too */
    if (RUN(0, (void *const *)outs, arena, 0) != KERF_STATUS_NULL_POINTER) return 105;
    if (d->arena_bytes > 0 && RUN(ins, (void *const *)outs, (char *)arena + 4, 0) != KERF_STATUS_MISALIGNED_ARENA)
        return 106;
    FILE *o = fopen(argv[2], "wb");
    if (!o) return 107;
    for (uint32_t i = 0; i < d->num_outputs; i++) fwrite(outs[i], 1, d->outputs[i].bytes, o);
    fclose(o);
    return 0;
}
