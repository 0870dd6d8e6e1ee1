/* Classifies the 450 held-out 8x8 digits with the kerf-compiled digits_cnn
 * model (libdigits.a + digits.h, made by `kerf compile`) and prints the
 * accuracy. Plain C11, no dependencies beyond libc: it runs natively and,
 * cross-compiled with -static, under qemu-user, and built with MinGW-w64
 * for Windows x64 (a COFF object), under Wine.
 *
 * Usage: digits test_x.npy test_y.npy
 *   test_x.npy: float32, C order, shape (N, 1, 8, 8)
 *   test_y.npy: int64 labels, shape (N,) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digits.h"

/* The arena: 64-byte aligned (C11 aligned_alloc; the Windows C runtime has
 * _aligned_malloc instead). */
#ifdef _WIN32
#include <malloc.h>
#define arena_alloc(align, bytes) _aligned_malloc((bytes), (align))
#define arena_free(p) _aligned_free(p)
#else
#define arena_alloc(align, bytes) aligned_alloc((align), (bytes))
#define arena_free(p) free(p)
#endif

/* A minimal .npy reader: version 1-3 header, C order, the given dtype
 * descriptor ("<f4", "<i8"). Returns the data (malloc'd) and the total
 * element count and first dimension, or NULL with a message on stderr. */
static void *read_npy(const char *path, const char *descr, size_t elem_size, size_t *count, size_t *rows) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return NULL;
    }
    unsigned char pre[10];
    if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "%s: not a .npy file\n", path);
        fclose(f);
        return NULL;
    }
    size_t hlen;
    if (pre[6] == 1) {
        if (fread(pre + 8, 1, 2, f) != 2) goto bad;
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else {
        unsigned char l[4];
        if (fread(l, 1, 4, f) != 4) goto bad;
        hlen = l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
    }
    char *h = calloc(hlen + 1, 1);
    if (!h || fread(h, 1, hlen, f) != hlen) {
        free(h);
        goto bad;
    }
    char want[32];
    snprintf(want, sizeof want, "'descr': '%s'", descr);
    const char *shape = strstr(h, "'shape': (");
    if (!strstr(h, want) || !strstr(h, "'fortran_order': False") || !shape) {
        fprintf(stderr, "%s: expected dtype %s in C order, header: %s\n", path, descr, h);
        free(h);
        fclose(f);
        return NULL;
    }
    size_t n = 1, first = 0;
    const char *p = shape + strlen("'shape': (");
    for (int dim = 0; *p && *p != ')'; dim++) {
        char *end;
        unsigned long d = strtoul(p, &end, 10);
        if (end == p) break;
        if (dim == 0) first = d;
        n *= d;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    free(h);
    void *data = malloc(n * elem_size);
    if (!data || fread(data, elem_size, n, f) != n) {
        free(data);
        goto bad;
    }
    fclose(f);
    *count = n;
    *rows = first;
    return data;
bad:
    fprintf(stderr, "%s: truncated\n", path);
    fclose(f);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s test_x.npy test_y.npy\n", argv[0]);
        return 2;
    }
    size_t nx, rows, ny, ylen;
    float *x = read_npy(argv[1], "<f4", sizeof(float), &nx, &rows);
    int64_t *y = read_npy(argv[2], "<i8", sizeof(int64_t), &ny, &ylen);
    if (!x || !y) return 1;
    const size_t per_image = DIGITS_INPUT_0_BYTES / sizeof(float);
    if (DIGITS_INPUT_0_DTYPE != KERF_DTYPE_FLOAT || DIGITS_OUTPUT_0_DTYPE != KERF_DTYPE_FLOAT ||
        nx != rows * per_image || ny != rows) {
        fprintf(stderr, "test set shape does not match the model (%zu images of %zu floats, %zu labels)\n", rows,
                per_image, ny);
        return 1;
    }
    /* The arena: DIGITS_ARENA_BYTES aligned to DIGITS_ARENA_ALIGN (64). */
    void *arena = arena_alloc(DIGITS_ARENA_ALIGN, (DIGITS_ARENA_BYTES + 63) / 64 * 64 + 64);
    float logits[DIGITS_OUTPUT_0_BYTES / sizeof(float)];
    size_t correct = 0;
    for (size_t i = 0; i < rows; i++) {
        const void *inputs[DIGITS_NUM_INPUTS] = {x + i * per_image};
        void *outputs[DIGITS_NUM_OUTPUTS] = {logits};
        int32_t st = digits_run(inputs, outputs, arena, NULL);
        if (st != KERF_STATUS_OK) {
            fprintf(stderr, "digits_run returned %d\n", (int)st);
            return 1;
        }
        size_t best = 0;
        for (size_t k = 1; k < sizeof logits / sizeof logits[0]; k++)
            if (logits[k] > logits[best]) best = k;
        correct += (int64_t)best == y[i];
    }
    printf("model %s: %zu/%zu correct, accuracy %.6f\n", digits_describe()->name, correct, rows,
           (double)correct / (double)rows);
    arena_free(arena);
    free(x);
    free(y);
    return 0;
}
