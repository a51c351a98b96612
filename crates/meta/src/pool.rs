//! The local worker pool: one main-task training per core, results in job order.

use rayon::prelude::*;

use crate::error::MetaError;

/// A pool for an environment's evaluations: `threads` workers (0: one per core), never
/// more than the environment allows.
pub fn worker_pool(threads: usize, env_limit: usize) -> Result<rayon::ThreadPool, MetaError> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let threads = if threads == 0 { cores } else { threads }.min(env_limit).max(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("l2s-eval-{i}"))
        .build()
        .map_err(|e| MetaError::Threads { threads, message: e.to_string() })
}

/// Runs `job(0..count)` on `pool`'s workers; results in job order.
///
/// With at least one job per worker, each worker takes whole jobs in turn (a training
/// per core), and their nested data-parallel work (the main task model's operations)
/// stays mostly on that worker: another one only steals from it when idle, at the end.
/// With fewer jobs than workers, the jobs' nested work spreads over the whole pool.
pub fn run_jobs<T: Send>(pool: &rayon::ThreadPool, count: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
    if count < pool.current_num_threads() {
        return pool.install(|| (0..count).into_par_iter().map(&job).collect());
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let take = || {
        std::iter::from_fn(|| {
            let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (k < count).then(|| (k, job(k)))
        })
        .collect::<Vec<_>>()
    };
    let mut results: Vec<(usize, T)> = pool.broadcast(|_| take()).into_iter().flatten().collect();
    results.sort_by_key(|(k, _)| *k);
    results.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results come back in job order, every job run on one of the pool's workers, for
    /// fewer jobs than workers and for more.
    #[test]
    fn run_jobs_keeps_order_on_the_pools_workers() {
        let pool = worker_pool(2, usize::MAX).expect("pool");
        for count in [0, 1, 2, 7] {
            let results = run_jobs(&pool, count, |k| (k, rayon::current_thread_index()));
            let order: Vec<usize> = results.iter().map(|(k, _)| *k).collect();
            assert_eq!(order, (0..count).collect::<Vec<_>>(), "{count} jobs");
            assert!(
                results.iter().all(|(_, worker)| worker.is_some_and(|w| w < 2)),
                "{count} jobs: {results:?}"
            );
        }
    }
}
