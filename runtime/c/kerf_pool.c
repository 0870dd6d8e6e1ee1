/* A persistent pthread pool implementing kerf_runtime.parallel_for (see
 * include/kerf_pool.h and docs/abi.md). C11 atomics + POSIX threads.
 *
 * Protocol: a job (task, arg, n) is published under the mutex together with
 * a new generation number; tasks are claimed with a compare-and-swap on a
 * 64-bit ticket holding (generation << 32 | next index). A worker that still
 * holds an older job's copy sees a foreign generation in the ticket and
 * claims nothing, so it never calls a finished job's task with a dead
 * argument. parallel_for returns once `done` reaches n: every claimed task
 * has then returned, and no further task of the job can be claimed. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include "kerf_pool.h"

/* How long an idle worker polls before sleeping on the condition variable:
 * bridges the gaps between one inference's kernels (microseconds) without
 * holding a core through a long serial kernel. */
#define KERF_POOL_SPIN_NS 50000
/* Polls between sched_yield calls while spinning: on a machine with more
 * runnable threads than cores a spinner must hand its core back now and
 * then, or it slows the very thread it waits for. */
#define KERF_POOL_POLLS_PER_YIELD 256u

struct kerf_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    uint64_t gen;
    uint32_t sleepers;
    int shutdown;
    void (*task)(void *arg, uint32_t i);
    void *arg;
    uint32_t n;
    /* lock-free */
    _Atomic uint64_t gen_seen; /* mirror of gen for spinning */
    _Atomic int stop;
    _Atomic uint64_t ticket; /* (gen & 0xffffffff) << 32 | next index */
    _Atomic uint32_t done;
    pthread_mutex_t busy; /* held by the thread running a job */
    uint32_t threads;     /* workers started + 1 */
    uint32_t nworkers;
    pthread_t *workers;
};

static void cpu_relax(uint32_t *polls) {
    if (++*polls % KERF_POOL_POLLS_PER_YIELD == 0) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Claims and runs tasks of generation `gen` until none is left. */
static void work(kerf_pool *p, uint64_t gen, void (*task)(void *, uint32_t), void *arg, uint32_t n) {
    uint64_t tag = (gen & 0xffffffffu) << 32;
    for (;;) {
        uint64_t t = atomic_load_explicit(&p->ticket, memory_order_acquire);
        for (;;) {
            if ((t & ~(uint64_t)0xffffffffu) != tag || (uint32_t)t >= n) return;
            if (atomic_compare_exchange_weak_explicit(&p->ticket, &t, t + 1, memory_order_acq_rel,
                                                      memory_order_acquire))
                break;
        }
        task(arg, (uint32_t)t);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

static void *worker_main(void *vp) {
    kerf_pool *p = vp;
    uint64_t seen = 0;
    for (;;) {
        uint32_t polls = 0;
        int64_t start = now_ns();
        while (atomic_load_explicit(&p->gen_seen, memory_order_acquire) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            /* the clock is read every 64 polls */
            if (polls % 64 != 63 || now_ns() - start < KERF_POOL_SPIN_NS) {
                cpu_relax(&polls);
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (p->gen == seen && !p->shutdown) {
                p->sleepers++;
                pthread_cond_wait(&p->cv, &p->mu);
                p->sleepers--;
            }
            pthread_mutex_unlock(&p->mu);
            break;
        }
        pthread_mutex_lock(&p->mu);
        if (p->shutdown) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        uint64_t gen = p->gen;
        void (*task)(void *, uint32_t) = p->task;
        void *arg = p->arg;
        uint32_t n = p->n;
        pthread_mutex_unlock(&p->mu);
        seen = gen;
        if (task) work(p, gen, task, arg, n);
    }
}

void kerf_pool_parallel_for(void *ctx, uint32_t n, void (*task)(void *arg, uint32_t i), void *arg) {
    kerf_pool *p = ctx;
    if (n == 0) return;
    if (!p || n == 1 || p->nworkers == 0 || pthread_mutex_trylock(&p->busy) != 0) {
        for (uint32_t i = 0; i < n; i++) task(arg, i);
        return;
    }
    pthread_mutex_lock(&p->mu);
    uint64_t gen = ++p->gen;
    p->task = task;
    p->arg = arg;
    p->n = n;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->ticket, (gen & 0xffffffffu) << 32, memory_order_release);
    atomic_store_explicit(&p->gen_seen, gen, memory_order_release);
    if (p->sleepers) pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    work(p, gen, task, arg, n);
    uint32_t polls = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < n) cpu_relax(&polls);
    pthread_mutex_lock(&p->mu);
    p->task = NULL; /* late workers find nothing to copy */
    p->arg = NULL;
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->busy);
}

kerf_pool *kerf_pool_create(uint32_t threads) {
    if (threads == 0) threads = 1;
    kerf_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->workers = calloc(threads, sizeof *p->workers);
    if (!p->workers || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->workers);
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p->workers);
        free(p);
        return NULL;
    }
    if (pthread_mutex_init(&p->busy, NULL) != 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p->workers);
        free(p);
        return NULL;
    }
    atomic_init(&p->gen_seen, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->ticket, 0);
    atomic_init(&p->done, 0);
    for (uint32_t w = 1; w < threads; w++) {
        if (pthread_create(&p->workers[p->nworkers], NULL, worker_main, p) != 0) break;
        p->nworkers++;
    }
    p->threads = p->nworkers + 1;
    return p;
}

uint32_t kerf_pool_threads(const kerf_pool *p) { return p ? p->threads : 1; }

kerf_runtime kerf_pool_runtime(kerf_pool *p) {
    kerf_runtime rt = {KERF_ABI_VERSION, kerf_pool_threads(p), kerf_pool_parallel_for, p};
    return rt;
}

void kerf_pool_destroy(kerf_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->shutdown = 1;
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (uint32_t w = 0; w < p->nworkers; w++) pthread_join(p->workers[w], NULL);
    pthread_mutex_destroy(&p->busy);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}
