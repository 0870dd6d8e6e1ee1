/* A small persistent pthread pool implementing the kerf_runtime threading
 * hook for C hosts (runtime/c/kerf_pool.c; C11 + POSIX threads).
 *
 *     kerf_pool *pool = kerf_pool_create(4);      // 4 threads incl. the caller
 *     kerf_runtime rt = kerf_pool_runtime(pool);
 *     model_run(inputs, outputs, arena, &rt);      // large kernels split
 *     kerf_pool_destroy(pool);
 *
 * The thread calling parallel_for takes part in the work. Idle workers spin
 * briefly (so the back-to-back kernels of one inference wake them fast),
 * then sleep on a condition variable. A parallel_for that finds the pool
 * busy (another thread's model run, or a nested call) runs its tasks itself,
 * in order, so sharing one pool never deadlocks. See docs/abi.md. */
#ifndef KERF_POOL_H
#define KERF_POOL_H
#include <stdint.h>
#include "kerf_runtime.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct kerf_pool kerf_pool;

/* A pool of `threads` threads in total (the caller + threads-1 workers; 0 is
 * taken as 1). Returns NULL when out of memory; if some workers cannot be
 * started the pool runs with those that did (kerf_pool_threads tells). */
kerf_pool *kerf_pool_create(uint32_t threads);

/* Threads that run tasks (started workers + the caller). */
uint32_t kerf_pool_threads(const kerf_pool *pool);

/* The runtime to pass to <name>_run; valid while the pool lives. */
kerf_runtime kerf_pool_runtime(kerf_pool *pool);

/* The parallel_for of kerf_pool_runtime (ctx = the pool). */
void kerf_pool_parallel_for(void *ctx, uint32_t n_tasks, void (*task)(void *arg, uint32_t i), void *arg);

/* Stops and joins the workers, frees the pool (NULL is ignored). */
void kerf_pool_destroy(kerf_pool *pool);

#ifdef __cplusplus
}
#endif
#endif /* KERF_POOL_H */
