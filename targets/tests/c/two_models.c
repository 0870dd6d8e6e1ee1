/* Links two kerf models into one program: both headers together, both
 * objects, distinct symbol prefixes. Prints "ok" when both run and agree
 * with each other (the same graph compiled under two names). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "alpha.h"
#include "beta.h"

int main(void) {
    static float x[ALPHA_INPUT_0_BYTES / 4];
    static float ya[ALPHA_OUTPUT_0_BYTES / 4], yb[BETA_OUTPUT_0_BYTES / 4];
    static float za[ALPHA_OUTPUT_1_BYTES / 4], zb[BETA_OUTPUT_1_BYTES / 4];
    for (unsigned i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    void *arena_a = aligned_alloc(ALPHA_ARENA_ALIGN, ALPHA_ARENA_BYTES + 64);
    void *arena_b = aligned_alloc(BETA_ARENA_ALIGN, BETA_ARENA_BYTES + 64);
    const void *ins[1] = {x};
    void *outs_a[2] = {ya, za};
    void *outs_b[2] = {yb, zb};
    if (alpha_run(ins, outs_a, arena_a, NULL) != 0) return 1;
    if (beta_run(ins, outs_b, arena_b, NULL) != 0) return 2;
    if (alpha_describe()->num_outputs != ALPHA_NUM_OUTPUTS || beta_describe()->arena_bytes != BETA_ARENA_BYTES) return 3;
    for (unsigned i = 0; i < sizeof ya / sizeof ya[0]; i++)
        if (ya[i] != yb[i]) return 4;
    kerf_runtime bad = {KERF_ABI_VERSION + 1, 1, 0, 0};
    if (alpha_run(ins, outs_a, arena_a, &bad) != KERF_STATUS_ABI_MISMATCH) return 5;
    printf("ok\n");
    return 0;
}
