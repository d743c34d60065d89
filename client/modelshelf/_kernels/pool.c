/* Worker threads kept between calls, for the kernels' opt-in threads (modelshelf.set_threads).
 *
 * A call is a number of units (a dense product's row blocks, a forest's row chunks), each run
 * once by ``unit(ctx, u, slot)``: on the calling thread (slot 0) and on the workers posted for
 * the call (slots 1 ..). Units are claimed one at a time by a compare-and-swap on one word
 * (the call's generation, the next unit, the number of units), so a worker that is not running
 * (a busy node's other processes have the cores) claims nothing and the caller runs the units
 * itself: the call then waits only for units a worker has begun, never for a worker to be
 * scheduled. What a unit computes must not depend on which thread runs it.
 *
 * Starting threads per call cost more than a 1000-row product (a new thread's first BLAS call
 * sets up OpenBLAS's buffers for it), and so does waking a parked one on this VM (tens of us):
 * the workers start on first use, up to the threads asked for, and after a call a worker spins
 * for SPIN_NS for the next before it parks on its condition variable, as OpenMP runtimes and
 * OpenBLAS's own threads do. The default (one thread) never starts a worker.
 *
 * One call uses the pool at a time; a call that finds it in use (another Python thread's) runs
 * its units on its own thread. A worker takes part only in the call it was posted for (the
 * generation it was given), so a slot is always below the call's ``threads``. Workers start
 * with every signal blocked (signals stay with Python's threads); a forked child starts with
 * no workers. */
#include "kernels.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define SPIN_NS 200000L /* 0.2 ms */
#define UNIT_BITS 20    /* a call of more units than 2^20 - 1 runs on one thread */
#define UNIT_MASK ((UINT64_C(1) << UNIT_BITS) - 1)
#define GEN_MASK ((UINT64_C(1) << (64 - 2 * UNIT_BITS)) - 1)

typedef struct {
    pthread_t id;
    pthread_mutex_t mu;
    pthread_cond_t go;
    atomic_long posted;       /* calls this worker was posted for */
    _Atomic uint64_t gen;     /* the generation of the last of them */
    npy_intp slot;
} Worker;

static struct {
    MskUnit unit; /* the call; written before ``claim`` is published */
    void *ctx;
    _Atomic uint64_t claim;   /* generation << 40 | next unit << 20 | units */
    atomic_long done;         /* units finished */
    pthread_mutex_t mu;       /* with ``fin``: a caller that stops spinning sleeps there */
    pthread_cond_t fin;
} call = {.mu = PTHREAD_MUTEX_INITIALIZER, .fin = PTHREAD_COND_INITIALIZER};

static Worker workers[MSK_MAX_THREADS];
static npy_intp n_workers;
static uint64_t generation;
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void pool_forked(void) { /* in the child: the workers did not come along */
    n_workers = 0;
    pthread_mutex_init(&pool_mu, NULL);
    pthread_mutex_init(&call.mu, NULL);
    pthread_cond_init(&call.fin, NULL);
}

static void pool_register_atfork(void) { pthread_atfork(NULL, NULL, pool_forked); }

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spins until ``*counter`` reaches ``want`` or SPIN_NS pass; 1 if it did. */
static int spin_until(atomic_long *counter, long want) {
    long deadline = 0;
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(counter, memory_order_acquire) >= want) {
            return 1;
        }
        cpu_relax();
        if ((i & 255) == 255) {
            /* a spinner woken onto its partner's core (the scheduler's wake-affine choice)
             * must not take that core from it: yield, which returns at once when no other
             * thread waits for this core */
            sched_yield();
            long t = now_ns();
            if (deadline == 0) {
                deadline = t + SPIN_NS;
            } else if (t >= deadline) {
                return 0;
            }
        }
    }
}

/* Claims and runs the units of the call of generation ``gen`` until none is left. */
static void claim_units(uint64_t gen, npy_intp slot) {
    uint64_t seen = atomic_load_explicit(&call.claim, memory_order_acquire);
    for (;;) {
        uint64_t next = (seen >> UNIT_BITS) & UNIT_MASK, units = seen & UNIT_MASK;
        if (seen >> (2 * UNIT_BITS) != gen || next >= units) {
            return; /* another call's, or every unit claimed */
        }
        if (!atomic_compare_exchange_weak_explicit(&call.claim, &seen,
                                                   seen + (UINT64_C(1) << UNIT_BITS),
                                                   memory_order_acq_rel, memory_order_acquire)) {
            continue; /* ``seen`` now holds the word as it is */
        }
        /* the unit is ours: the caller keeps the call as it is until every unit is done */
        call.unit(call.ctx, (npy_intp)next, slot);
        if (atomic_fetch_add_explicit(&call.done, 1, memory_order_acq_rel) + 1 == (long)units) {
            pthread_mutex_lock(&call.mu); /* the last unit: a caller may sleep on ``fin`` */
            pthread_cond_signal(&call.fin);
            pthread_mutex_unlock(&call.mu);
        }
        seen = atomic_load_explicit(&call.claim, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    long seen = 0;
    for (;;) {
        if (!spin_until(&w->posted, seen + 1)) {
            pthread_mutex_lock(&w->mu);
            while (atomic_load(&w->posted) <= seen) {
                pthread_cond_wait(&w->go, &w->mu);
            }
            pthread_mutex_unlock(&w->mu);
        }
        seen = atomic_load(&w->posted);
        claim_units(atomic_load(&w->gen), w->slot);
    }
    return NULL;
}

/* At least ``want`` workers running (called with pool_mu held); returns how many there are. */
static npy_intp pool_grow(npy_intp want) {
    pthread_once(&atfork_once, pool_register_atfork);
    while (n_workers < want) {
        Worker *w = &workers[n_workers];
        if (pthread_mutex_init(&w->mu, NULL) != 0) {
            break;
        }
        if (pthread_cond_init(&w->go, NULL) != 0) {
            pthread_mutex_destroy(&w->mu);
            break;
        }
        atomic_init(&w->posted, 0);
        atomic_init(&w->gen, 0);
        w->slot = n_workers + 1;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_t attr;
        int started = pthread_attr_init(&attr) == 0 &&
                      pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
                      pthread_create(&w->id, &attr, worker_main, w) == 0;
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!started) {
            pthread_cond_destroy(&w->go);
            pthread_mutex_destroy(&w->mu);
            break;
        }
        n_workers++;
    }
    return n_workers;
}

void msk_pool_run(MskUnit unit, void *ctx, npy_intp units, npy_intp threads) {
    threads = threads < MSK_MAX_THREADS ? threads : MSK_MAX_THREADS;
    threads = threads < units ? threads : units;
    if (threads <= 1 || units > (npy_intp)UNIT_MASK || pthread_mutex_trylock(&pool_mu) != 0) {
        for (npy_intp u = 0; u < units; u++) {
            unit(ctx, u, 0);
        }
        return;
    }
    npy_intp helpers = pool_grow(threads - 1);
    helpers = helpers < threads - 1 ? helpers : threads - 1;
    call.unit = unit;
    call.ctx = ctx;
    atomic_store(&call.done, 0);
    generation = (generation + 1) & GEN_MASK;
    atomic_store_explicit(&call.claim, generation << (2 * UNIT_BITS) | (uint64_t)units,
                          memory_order_release);
    for (npy_intp t = 0; t < helpers; t++) {
        Worker *w = &workers[t];
        pthread_mutex_lock(&w->mu);
        atomic_store(&w->gen, generation);
        atomic_fetch_add(&w->posted, 1);
        pthread_cond_signal(&w->go);
        pthread_mutex_unlock(&w->mu);
    }
    claim_units(generation, 0);
    if (!spin_until(&call.done, (long)units)) {
        pthread_mutex_lock(&call.mu);
        while (atomic_load(&call.done) < (long)units) {
            pthread_cond_wait(&call.fin, &call.mu);
        }
        pthread_mutex_unlock(&call.mu);
    }
    pthread_mutex_unlock(&pool_mu);
}
