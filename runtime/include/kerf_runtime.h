/* kerf runtime ABI types for C hosts (ABI version 1).
 * Every generated model header contains the same definitions under the same
 * guard, so this file and any number of model headers can be included together.
 * See docs/abi.md. */
#ifndef KERF_RUNTIME_H
#define KERF_RUNTIME_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
#ifndef KERF_RUNTIME_TYPES
#define KERF_RUNTIME_TYPES
#define KERF_ABI_VERSION 1
#define KERF_STATUS_OK 0
#define KERF_STATUS_NULL_POINTER 1
#define KERF_STATUS_MISALIGNED_ARENA 2
#define KERF_STATUS_ABI_MISMATCH 3
#define KERF_STATUS_INDEX_OUT_OF_RANGE 4
/* ONNX TensorProto.DataType codes */
#define KERF_DTYPE_FLOAT 1
#define KERF_DTYPE_UINT8 2
#define KERF_DTYPE_INT8 3
#define KERF_DTYPE_UINT16 4
#define KERF_DTYPE_INT16 5
#define KERF_DTYPE_INT32 6
#define KERF_DTYPE_INT64 7
#define KERF_DTYPE_BOOL 9
#define KERF_DTYPE_FLOAT16 10
#define KERF_DTYPE_DOUBLE 11
#define KERF_DTYPE_UINT32 12
#define KERF_DTYPE_UINT64 13
#define KERF_DTYPE_BFLOAT16 16
/* narrow types: one byte per element, never packed (see docs/abi.md) */
#define KERF_DTYPE_FLOAT8E4M3FN 17
#define KERF_DTYPE_FLOAT8E4M3FNUZ 18
#define KERF_DTYPE_FLOAT8E5M2 19
#define KERF_DTYPE_FLOAT8E5M2FNUZ 20
#define KERF_DTYPE_UINT4 21
#define KERF_DTYPE_INT4 22
#define KERF_DTYPE_FLOAT4E2M1 23
#define KERF_DTYPE_FLOAT8E8M0 24
#define KERF_DTYPE_UINT2 25
#define KERF_DTYPE_INT2 26
typedef struct kerf_runtime {
    uint32_t abi_version;
    uint32_t num_threads;
    void (*parallel_for)(void *ctx, uint32_t n_tasks, void (*task)(void *arg, uint32_t i), void *arg);
    void *ctx;
} kerf_runtime;
typedef struct kerf_tensor_desc {
    const char *name;
    int32_t dtype;
    uint32_t rank;
    const int64_t *dims;
    uint64_t bytes;
} kerf_tensor_desc;
typedef struct kerf_model_desc {
    uint32_t abi_version;
    uint32_t num_inputs;
    uint32_t num_outputs;
    uint32_t arena_align;
    uint64_t arena_bytes;
    const kerf_tensor_desc *inputs;
    const kerf_tensor_desc *outputs;
    const char *name;
} kerf_model_desc;
#endif /* KERF_RUNTIME_TYPES */
#ifdef __cplusplus
}
#endif
#endif /* KERF_RUNTIME_H */
