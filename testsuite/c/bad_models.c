/* Hand-written "models" that break the ABI on purpose, linked into the
 * harness by testsuite/tests/memcheck.rs to prove that the guards and
 * valgrind really catch writes outside owned memory. Each has one f32[4]
 * input and one f32[4] output and an arena of 256 bytes. */
#include <stdint.h>
#include <string.h>
#include "kerf_runtime.h"

static const int64_t dims[1] = {4};
static const kerf_tensor_desc in_desc[1] = {{"x", 1, 1, dims, 16}};
static const kerf_tensor_desc out_desc[1] = {{"y", 1, 1, dims, 16}};
static const kerf_model_desc desc = {KERF_ABI_VERSION, 1, 1, 64, 256, in_desc, out_desc, "bad"};

static void copy(const void *const *inputs, void *const *outputs) { memcpy(outputs[0], inputs[0], 16); }

/* Writes one float past the end of its output. */
int32_t out_overflow_run(const void *const *inputs, void *const *outputs, void *arena, const kerf_runtime *rt) {
    (void)arena, (void)rt;
    copy(inputs, outputs);
    ((volatile float *)outputs[0])[4] = 1.0f;
    return 0;
}
const kerf_model_desc *out_overflow_describe(void) { return &desc; }

/* Writes one byte before the start of its arena. */
int32_t arena_underflow_run(const void *const *inputs, void *const *outputs, void *arena, const kerf_runtime *rt) {
    (void)rt;
    copy(inputs, outputs);
    ((volatile unsigned char *)arena)[-1] = 0;
    return 0;
}
const kerf_model_desc *arena_underflow_describe(void) { return &desc; }

/* Scribbles on its (const) input. */
int32_t input_write_run(const void *const *inputs, void *const *outputs, void *arena, const kerf_runtime *rt) {
    (void)arena, (void)rt;
    copy(inputs, outputs);
    ((volatile float *)inputs[0])[0] += 1.0f;
    return 0;
}
const kerf_model_desc *input_write_describe(void) { return &desc; }

/* Returns uninitialised arena memory as its output (valgrind only: memcheck
 * reports it when the harness writes the output file). */
int32_t uninit_read_run(const void *const *inputs, void *const *outputs, void *arena, const kerf_runtime *rt) {
    (void)inputs, (void)rt;
    memcpy(outputs[0], arena, 16);
    return 0;
}
const kerf_model_desc *uninit_read_describe(void) { return &desc; }
