//! A fixed pool of inference threads shared by every live call and request of a server.
//!
//! Each thread owns one [`Worker`] (whisper state) per loaded model, so the weights are loaded
//! once and threads never share a state. Work arrives as closures in two queues: finals
//! (and whole recordings) first, interim re-decodes only when no final waits, because a late
//! final costs the agent more than a stale interim. Nothing here touches the async runtime:
//! submitting never blocks, and the result comes back on a oneshot channel.
//!
//! The queues are bounded by `capacity`; a server sizes it from its admission limit
//! (streams × outstanding jobs per stream), so `Full` means a bug or an overload the admission
//! control missed, and is reported, never queued.

use super::{Engine, EngineError, Worker};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Which queue a job waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Final results and whole recordings.
    Final,
    /// Interim re-decodes: run only when no final is waiting.
    Interim,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("the inference queue is full ({0} jobs waiting)")]
    Full(usize),
    #[error("model index {0} is not loaded")]
    NoSuchModel(usize),
    #[error("the inference pool is shut down")]
    Closed,
}

type Job = Box<dyn FnOnce(&mut [Worker]) + Send>;

struct Jobs {
    finals: VecDeque<Job>,
    interims: VecDeque<Job>,
    closed: bool,
}

struct Shared {
    jobs: Mutex<Jobs>,
    ready: Condvar,
}

pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    engines: Vec<Engine>,
    capacity: usize,
}

impl Pool {
    /// Starts `workers` threads, each running whisper with `threads` threads, holding a state
    /// for every engine. Fails if a state cannot be created (out of memory).
    pub fn start(
        engines: Vec<Engine>,
        workers: usize,
        threads: usize,
        capacity: usize,
    ) -> Result<Self, EngineError> {
        let shared = Arc::new(Shared {
            jobs: Mutex::new(Jobs {
                finals: VecDeque::new(),
                interims: VecDeque::new(),
                closed: false,
            }),
            ready: Condvar::new(),
        });
        let mut handles = Vec::new();
        for i in 0..workers.max(1) {
            let mut states = engines
                .iter()
                .map(|e| e.worker(threads))
                .collect::<Result<Vec<_>, _>>()?;
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || worker_loop(&shared, &mut states))
                .map_err(|e| {
                    EngineError::Inference(format!("cannot start inference thread: {e}"))
                })?;
            handles.push(handle);
        }
        Ok(Self {
            shared,
            threads: handles,
            engines,
            capacity: capacity.max(1),
        })
    }

    pub fn engines(&self) -> &[Engine] {
        &self.engines
    }

    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Jobs waiting (not running).
    pub fn queued(&self) -> usize {
        let jobs = self.lock();
        jobs.finals.len() + jobs.interims.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Jobs> {
        // A worker that panicked mid-job poisoned nothing the queue relies on.
        self.shared.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `f` to run on a worker with the state of model `model`. The job is skipped if
    /// the receiver is dropped before a worker takes it (the caller went away).
    pub fn submit<T, F>(
        &self,
        model: usize,
        priority: Priority,
        f: F,
    ) -> Result<oneshot::Receiver<T>, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Worker) -> T + Send + 'static,
    {
        if model >= self.engines.len() {
            return Err(PoolError::NoSuchModel(model));
        }
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |states: &mut [Worker]| {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(f(&mut states[model]));
        });
        let mut jobs = self.lock();
        if jobs.closed {
            return Err(PoolError::Closed);
        }
        let waiting = jobs.finals.len() + jobs.interims.len();
        if waiting >= self.capacity {
            return Err(PoolError::Full(waiting));
        }
        match priority {
            Priority::Final => jobs.finals.push_back(job),
            Priority::Interim => jobs.interims.push_back(job),
        }
        drop(jobs);
        self.shared.ready.notify_one();
        Ok(rx)
    }
}

fn worker_loop(shared: &Shared, states: &mut [Worker]) {
    loop {
        let job = {
            let mut jobs = shared.jobs.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(j) = jobs
                    .finals
                    .pop_front()
                    .or_else(|| jobs.interims.pop_front())
                {
                    break j;
                }
                if jobs.closed {
                    return;
                }
                jobs = shared.ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
            }
        };
        // A panic inside whisper-rs must not take the thread (and its states) down with it
        // silently: the job's sender is dropped, so its caller sees the failure.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(states))).is_err() {
            tracing::error!("an inference job panicked; its caller gets an error");
        }
    }
}

impl Drop for Pool {
    /// Lets queued jobs finish, then joins the threads.
    fn drop(&mut self) {
        self.lock().closed = true;
        self.shared.ready.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
