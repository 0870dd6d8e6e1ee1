/* The table of models linked into a harness program (generated as table.c
 * by the tests: one entry per model object, terminated by a NULL name). */
#ifndef KERF_TEST_HARNESS_H
#define KERF_TEST_HARNESS_H
#include <stdint.h>
#include "kerf_runtime.h"

typedef struct harness_model {
    const char *name;
    int32_t (*run)(const void *const *inputs, void *const *outputs, void *arena, const kerf_runtime *rt);
    const kerf_model_desc *(*describe)(void);
} harness_model;

extern const harness_model harness_models[];
#endif
