//! A small persistent thread pool that implements the `kerf_runtime`
//! threading hook (`parallel_for`), std only.
//!
//! Design: `n - 1` worker threads plus the calling thread, which takes part
//! in every job. A job is published under a mutex with a generation number;
//! workers that are idle spin on the generation for a short while (50 µs,
//! so the back-to-back kernels of one inference wake them in well under a
//! microsecond, yielding the core now and then) and then sleep on a
//! condition variable.
//! Tasks are claimed one at a time from an atomic counter (dynamic
//! balancing); `parallel_for` returns when every claimed task has finished,
//! and a task index is never claimed twice, so a straggler worker holding a
//! finished job only touches that job's counters, never its task or argument.
//!
//! Concurrent or nested `parallel_for` calls on one pool (two threads
//! running models with the same pool, or a task calling back) do not block:
//! whoever finds the pool busy runs its tasks itself, in order.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{KerfRuntime, TaskFn, ABI_VERSION};

/// How long an idle worker polls for new work before it sleeps on the
/// condition variable. Long enough to bridge the gaps between the kernels of
/// one inference (microseconds), short enough not to hold a core through a
/// long serial kernel.
const SPIN: Duration = Duration::from_micros(50);

/// Polls between `yield_now` calls while spinning: a spinning thread on a
/// machine with more runnable threads than cores hands its core back often
/// (a spinner that never yields slows the very thread it waits for).
const POLLS_PER_YIELD: u32 = 256;

/// One polling step: a spin hint, and every [`POLLS_PER_YIELD`] polls a yield.
fn relax(polls: &mut u32) {
    *polls = polls.wrapping_add(1);
    if (*polls).is_multiple_of(POLLS_PER_YIELD) {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// One `parallel_for` call.
struct Job {
    task: TaskFn,
    arg: *mut c_void,
    n: u32,
    /// Next task index to claim.
    next: AtomicU32,
    /// Tasks finished.
    done: AtomicU32,
}

// SAFETY: `arg` is only dereferenced by `task`, which the caller of
// `parallel_for` promises may run on any thread for every index < n until
// `parallel_for` returns; after that no index can be claimed (see `work`).
unsafe impl Send for Job {}
// SAFETY: as above; the counters are atomics.
unsafe impl Sync for Job {}

impl Job {
    /// Claims and runs tasks until none is left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            // SAFETY: i < n was claimed exactly once, and the caller of
            // `parallel_for` is still waiting for it (done < n), so `task`
            // and `arg` are valid.
            unsafe { (self.task)(self.arg, i) };
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

struct State {
    generation: u64,
    job: Option<Arc<Job>>,
    sleepers: u32,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Mirror of `state.generation` for spinning without the lock.
    generation: AtomicU64,
    shutdown: AtomicBool,
    /// Held by the thread currently running a job on this pool.
    busy: Mutex<()>,
    /// Threads requested (1 = run everything on the caller).
    threads: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a thread panicked while holding it; the
    // state it protects is always consistent (plain assignments).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn worker(&self) {
        let mut seen = 0u64;
        loop {
            let mut polls = 0u32;
            let start = Instant::now();
            while self.generation.load(Ordering::Acquire) == seen && !self.shutdown.load(Ordering::Relaxed) {
                // read the clock only every 64 polls
                if polls % 64 != 63 || start.elapsed() < SPIN {
                    relax(&mut polls);
                    continue;
                }
                let mut st = lock(&self.state);
                while st.generation == seen && !st.shutdown {
                    st.sleepers += 1;
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                    st.sleepers -= 1;
                }
                break;
            }
            let job = {
                let st = lock(&self.state);
                if st.shutdown {
                    return;
                }
                seen = st.generation;
                st.job.clone()
            };
            if let Some(job) = job {
                job.work();
            }
        }
    }

    fn parallel_for(&self, n: u32, task: TaskFn, arg: *mut c_void) {
        let serial = || {
            for i in 0..n {
                // SAFETY: the caller's contract for `parallel_for`.
                unsafe { task(arg, i) };
            }
        };
        if n <= 1 || self.threads <= 1 {
            return serial();
        }
        let _busy = match self.busy.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return serial(),
        };
        let job = Arc::new(Job { task, arg, n, next: AtomicU32::new(0), done: AtomicU32::new(0) });
        {
            let mut st = lock(&self.state);
            st.generation += 1;
            st.job = Some(job.clone());
            self.generation.store(st.generation, Ordering::Release);
            if st.sleepers > 0 {
                self.wake.notify_all();
            }
        }
        job.work();
        let mut polls = 0u32;
        while job.done.load(Ordering::Acquire) < n {
            relax(&mut polls);
        }
        lock(&self.state).job = None;
    }
}

/// A persistent pool of worker threads implementing `parallel_for`.
///
/// ```
/// let pool = kerf_runtime::ThreadPool::new(2);
/// let rt = pool.runtime(); // or Model::run_with_pool(.., &pool)
/// assert_eq!(rt.num_threads, 2);
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Threads actually running (workers started + the caller).
    threads: u32,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThreadPool({} threads)", self.threads)
    }
}

/// The `parallel_for` of [`ThreadPool::runtime`].
///
/// # Safety
/// `ctx` must be the pool's context from [`ThreadPool::runtime`] with the
/// pool alive; `task(arg, i)` must be callable on any thread for i < n.
unsafe extern "C" fn pool_parallel_for(ctx: *mut c_void, n: u32, task: TaskFn, arg: *mut c_void) {
    // SAFETY: `ctx` is `Arc::as_ptr` of the pool's `Shared`, alive while the
    // pool is (guaranteed by the caller).
    let shared = unsafe { &*(ctx as *const Shared) };
    shared.parallel_for(n, task, arg);
}

impl ThreadPool {
    /// A pool running tasks on `threads` threads in total: the caller of
    /// `parallel_for` plus `threads - 1` workers (0 is taken as 1). If the
    /// system cannot start a worker, the pool runs with the ones it has.
    pub fn new(threads: usize) -> ThreadPool {
        let requested = threads.clamp(1, u32::MAX as usize) as u32;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { generation: 0, job: None, sleepers: 0, shutdown: false }),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            busy: Mutex::new(()),
            threads: requested,
        });
        let mut workers = Vec::new();
        for w in 1..requested {
            let s = shared.clone();
            match std::thread::Builder::new().name(format!("kerf-worker-{w}")).spawn(move || s.worker()) {
                Ok(h) => workers.push(h),
                // fewer threads than asked: the caller claims more tasks
                Err(_) => break,
            }
        }
        let threads = workers.len() as u32 + 1;
        ThreadPool { shared, workers, threads }
    }

    /// Threads that run tasks (workers + the calling thread).
    pub fn threads(&self) -> usize {
        self.threads as usize
    }

    /// The `kerf_runtime` to pass to generated code. It points into this
    /// pool: use it only while the pool is alive.
    pub fn runtime(&self) -> KerfRuntime {
        KerfRuntime {
            abi_version: ABI_VERSION,
            num_threads: self.threads,
            parallel_for: Some(pool_parallel_for),
            ctx: Arc::as_ptr(&self.shared) as *mut c_void,
        }
    }

    /// Runs `f(i)` for every `i < n` on the pool (for tests and hosts that
    /// want the same scheduling from Rust).
    pub fn run<F: Fn(u32) + Sync>(&self, n: u32, f: F) {
        unsafe extern "C" fn call<F: Fn(u32) + Sync>(arg: *mut c_void, i: u32) {
            // SAFETY: `arg` is the `&F` passed below, alive for the call.
            let f = unsafe { &*(arg as *const F) };
            f(i);
        }
        self.shared.parallel_for(n, call::<F>, &f as *const F as *mut c_void);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        {
            let mut st = lock(&self.shared.state);
            st.shutdown = true;
            self.shared.shutdown.store(true, Ordering::Release);
            self.shared.wake.notify_all();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_runs_once() {
        for threads in [1, 2, 3, 8] {
            let pool = ThreadPool::new(threads);
            assert_eq!(pool.threads(), threads);
            for n in [0u32, 1, 2, 5, 64, 1000] {
                let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                pool.run(n, |i| {
                    hits[i as usize].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "threads {threads} n {n}");
            }
        }
    }

    #[test]
    fn many_back_to_back_jobs_and_sleeping_workers() {
        let pool = ThreadPool::new(3);
        let sum = AtomicU64::new(0);
        for round in 0..2000u64 {
            pool.run(7, |i| {
                sum.fetch_add(u64::from(i) + round, Ordering::Relaxed);
            });
            if round % 500 == 0 {
                // let the workers fall asleep, then wake them
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        let want: u64 = (0..2000u64).map(|r| 21 + 7 * r).sum();
        assert_eq!(sum.load(Ordering::Relaxed), want);
    }

    #[test]
    fn uses_more_than_one_thread() {
        let pool = ThreadPool::new(2);
        let ids = Mutex::new(std::collections::BTreeSet::new());
        // tasks long enough that the worker wakes up and claims some
        for _ in 0..50 {
            pool.run(16, |_| {
                lock(&ids).insert(format!("{:?}", std::thread::current().id()));
                std::thread::sleep(std::time::Duration::from_micros(200));
            });
        }
        assert_eq!(lock(&ids).len(), 2);
    }

    #[test]
    fn nested_and_concurrent_calls_do_not_deadlock() {
        let pool = ThreadPool::new(2);
        let count = AtomicU32::new(0);
        pool.run(4, |_| {
            pool.run(3, |_| {
                count.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(count.load(Ordering::Relaxed), 12);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..100 {
                        pool.run(5, |_| {
                            count.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert_eq!(count.load(Ordering::Relaxed), 12 + 1500);
    }

    #[test]
    fn runtime_struct_calls_the_pool() {
        let pool = ThreadPool::new(2);
        let rt = pool.runtime();
        assert_eq!((rt.abi_version, rt.num_threads), (ABI_VERSION, 2));
        unsafe extern "C" fn task(arg: *mut c_void, i: u32) {
            // SAFETY: arg is the array below, i < 10.
            let a = unsafe { &*(arg as *const [AtomicU32; 10]) };
            a[i as usize].fetch_add(i + 1, Ordering::Relaxed);
        }
        let arr: [AtomicU32; 10] = Default::default();
        let pf = rt.parallel_for.unwrap();
        // SAFETY: ctx is the live pool's; task accepts every i < 10.
        unsafe { pf(rt.ctx, 10, task, &arr as *const _ as *mut c_void) };
        for (i, a) in arr.iter().enumerate() {
            assert_eq!(a.load(Ordering::Relaxed), i as u32 + 1);
        }
    }
}
