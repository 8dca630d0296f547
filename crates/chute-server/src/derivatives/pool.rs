//! A fixed pool of OS threads for image work, so decoding and resizing
//! never block the async runtime's threads (nor use tokio's blocking pool,
//! which grows to hundreds of threads). The queue is bounded: a job is
//! accepted only while fewer than `workers + queue` jobs are waiting or
//! running, and [`WorkerPool::reserve`] waits for a place before any
//! source bytes are read, so a flood of uploads costs neither memory nor
//! threads. At most [`MAX_WAITING`] jobs wait for a place (a task and a
//! receipt each, no source bytes); beyond that `reserve` gives up at once.
//! Sources are read one turn ahead of the workers (at most `2 * workers`
//! in memory), so reading overlaps decoding.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The most jobs that wait for a place in the pool at once.
pub const MAX_WAITING: usize = 4096;

/// The pool: `workers` threads fed from one bounded channel.
#[derive(Debug, Clone)]
pub struct WorkerPool {
    jobs: SyncSender<Job>,
    /// Places in the pool: running plus waiting jobs.
    places: Arc<Semaphore>,
    /// Turns to read a source ahead of a free worker: at most `workers`
    /// sources are read (or wait, read) while `workers` others decode, so
    /// I/O overlaps decoding and at most `2 * workers` sources are in
    /// memory at once.
    reads: Arc<Semaphore>,
    /// Turns to run on a worker thread.
    turns: Arc<Semaphore>,
    /// Turns to wait for a place ([`MAX_WAITING`]).
    waiting: Arc<Semaphore>,
    workers: usize,
}

/// A place in the pool, held from acceptance until the job ends.
#[derive(Debug)]
pub struct Place {
    _permit: OwnedSemaphorePermit,
}

impl WorkerPool {
    /// Starts `workers` threads (at least 1) with room for `queue` waiting
    /// jobs. The threads end when the last handle to the pool is dropped.
    pub fn new(workers: usize, queue: usize) -> std::io::Result<Self> {
        let workers = workers.max(1);
        let (jobs, rx) = sync_channel::<Job>(workers + queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("chute-image-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Self {
            jobs,
            places: Arc::new(Semaphore::new(workers + queue)),
            reads: Arc::new(Semaphore::new(workers)),
            turns: Arc::new(Semaphore::new(workers)),
            waiting: Arc::new(Semaphore::new(MAX_WAITING)),
            workers,
        })
    }

    /// The number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// A place for one job, or `None` when the pool is full.
    pub fn try_reserve(&self) -> Option<Place> {
        Arc::clone(&self.places)
            .try_acquire_owned()
            .ok()
            .map(|p| Place { _permit: p })
    }

    /// A place for one job, waiting for one when the pool is full; `None`
    /// at once when [`MAX_WAITING`] jobs already wait.
    pub async fn reserve(&self) -> Option<Place> {
        if let Some(place) = self.try_reserve() {
            return Some(place);
        }
        let _waiting = self.waiting.try_acquire().ok()?;
        let permit = Arc::clone(&self.places).acquire_owned().await.ok()?;
        Some(Place { _permit: permit })
    }

    /// Runs `prepare` (reading the source, on the async side) once a read
    /// turn is free, then waits for a free worker and runs the job it
    /// returns there.
    pub async fn run<P, T, F>(&self, _place: &Place, prepare: P) -> Option<T>
    where
        P: std::future::Future<Output = Option<F>>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let read = self.reads.acquire().await.ok()?;
        let f = prepare.await?;
        let _turn = self.turns.acquire().await.ok()?;
        drop(read);
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        // Never blocks: the channel holds as many jobs as there are places.
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            // A panicking decoder must not take the worker down with it.
            Ok(job) => {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                    tracing::error!("an image job panicked; its derivatives are marked failed");
                }
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pool_runs_jobs_off_the_runtime_and_refuses_when_full() {
        let pool = WorkerPool::new(1, 1).unwrap();
        let a = pool.try_reserve().unwrap();
        let b = pool.try_reserve().unwrap();
        assert!(pool.try_reserve().is_none(), "1 worker + 1 queued is full");
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.reserve().await.is_some() }
        });
        let name = pool
            .run(&a, async {
                Some(|| std::thread::current().name().map(str::to_owned))
            })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("chute-image-0"));
        drop(a);
        assert!(waiting.await.unwrap(), "a waiting job gets the freed place");
        assert!(pool.try_reserve().is_some(), "and frees it in turn");
        let panicked = pool.run(&b, async { Some(|| -> u8 { panic!("boom") }) }).await;
        assert_eq!(panicked, None);
        assert_eq!(
            pool.run(&b, async { Some(|| 7) }).await,
            Some(7),
            "the worker survived"
        );
    }
}
