//! The one inference executor: a fixed pool of threads that every live call, recording and
//! batch file of a process shares.
//!
//! Each thread owns one [`Recogniser`] (a whisper state) per loaded model, so the weights are
//! loaded once and threads never share a state. Work arrives as closures in three queues,
//! taken in priority order: live finals, then live interim re-decodes, then the windows of
//! whole recordings (batch files, the unary `Transcribe` RPC). A late final costs an agent
//! more than a stale interim, and both more than a recording finishing a little later.
//! Nothing here touches the async runtime: submitting never blocks, and the result comes back
//! on a oneshot channel (await it, or `blocking_recv` it on a plain thread).
//!
//! The queues are bounded by `capacity`; a server sizes it from its admission limit
//! (streams × outstanding jobs per stream), so `Full` means a bug or an overload the admission
//! control missed, and is reported, never queued.

use super::{EngineError, Model, ModelInfo, Recogniser};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// Which queue a job waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Live finals.
    Final,
    /// Interim re-decodes: run only when no final is waiting.
    Interim,
    /// Windows of whole recordings: run when no live call is waiting.
    Batch,
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

type Job = Box<dyn FnOnce(&mut [Box<dyn Recogniser>]) + Send>;

/// The queues, one per [`Priority`], in the order they are served.
struct Jobs {
    queues: [VecDeque<Job>; 3],
    closed: bool,
}

impl Jobs {
    fn waiting(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    fn next(&mut self) -> Option<Job> {
        self.queues.iter_mut().find_map(VecDeque::pop_front)
    }
}

impl Priority {
    fn queue(self) -> usize {
        match self {
            Priority::Final => 0,
            Priority::Interim => 1,
            Priority::Batch => 2,
        }
    }
}

struct Shared {
    jobs: Mutex<Jobs>,
    ready: Condvar,
}

pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    models: Vec<ModelInfo>,
    capacity: usize,
}

impl Pool {
    /// Starts `workers` threads, each running whisper with `threads` threads, holding a state
    /// for every model (the first is the default). Fails if a state cannot be created (out of
    /// memory).
    pub fn start<M: Model + 'static>(
        models: Vec<M>,
        workers: usize,
        threads: usize,
        capacity: usize,
    ) -> Result<Self, EngineError> {
        let shared = Arc::new(Shared {
            jobs: Mutex::new(Jobs {
                queues: Default::default(),
                closed: false,
            }),
            ready: Condvar::new(),
        });
        let mut handles = Vec::new();
        for i in 0..workers.max(1) {
            let mut states = models
                .iter()
                .map(|m| m.recogniser(threads))
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
            models: models.iter().map(Model::info).collect(),
            capacity: capacity.max(1),
        })
    }

    /// The loaded models, in their index order (the first is the default).
    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// The index of the model named `name`.
    pub fn model_index(&self, name: &str) -> Option<usize> {
        self.models.iter().position(|m| m.name == name)
    }

    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Jobs waiting (not running).
    pub fn queued(&self) -> usize {
        self.lock().waiting()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Jobs> {
        // A worker that panicked mid-job poisoned nothing the queue relies on.
        self.shared.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `f` to run on a worker with the recogniser of model `model`. The job is skipped
    /// if the receiver is dropped before a worker takes it (the caller went away); the
    /// receiver gets an error if the job panicked.
    pub fn submit<T, F>(
        &self,
        model: usize,
        priority: Priority,
        f: F,
    ) -> Result<oneshot::Receiver<T>, PoolError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Recogniser) -> T + Send + 'static,
    {
        if model >= self.models.len() {
            return Err(PoolError::NoSuchModel(model));
        }
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |states: &mut [Box<dyn Recogniser>]| {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(f(states[model].as_mut()));
        });
        let mut jobs = self.lock();
        if jobs.closed {
            return Err(PoolError::Closed);
        }
        let waiting = jobs.waiting();
        if waiting >= self.capacity {
            return Err(PoolError::Full(waiting));
        }
        jobs.queues[priority.queue()].push_back(job);
        drop(jobs);
        self.shared.ready.notify_one();
        Ok(rx)
    }

    /// Runs `jobs` at [`Priority::Batch`] from a plain (non-async) thread, at most
    /// `in_flight` at a time, and returns their results in order. `done` hears how many
    /// leading jobs are finished, each time that number grows. After the first error no new
    /// job is started.
    ///
    /// `in_flight` bounds what one recording holds of the queue; jobs of other callers
    /// (live calls, other recordings) interleave with these.
    pub fn run_batch<T, F>(
        &self,
        model: usize,
        jobs: impl ExactSizeIterator<Item = F>,
        in_flight: usize,
        done: &mut dyn FnMut(usize),
    ) -> Result<Vec<T>, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Recogniser) -> Result<T, EngineError> + Send + 'static,
    {
        let total = jobs.len();
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<T, EngineError>)>();
        let mut results: Vec<Option<Result<T, EngineError>>> = (0..total).map(|_| None).collect();
        let mut pending = jobs.enumerate();
        // Held until the end: a job whose receiver is dropped is skipped as abandoned.
        let mut receivers = Vec::with_capacity(total);
        let (mut running, mut leading, mut failed) = (0usize, 0usize, false);
        loop {
            while !failed && running < in_flight.max(1) {
                let Some((i, job)) = pending.next() else {
                    break;
                };
                let reply = Reply::new(i, tx.clone());
                let submitted = self.submit(model, Priority::Batch, move |r| {
                    reply.send(job(r));
                });
                match submitted {
                    // The reply travels on `tx`; the oneshot only keeps the job wanted.
                    Ok(rx) => {
                        receivers.push(rx);
                        running += 1;
                    }
                    Err(e) => {
                        results[i] = Some(Err(EngineError::Inference(e.to_string())));
                        failed = true;
                    }
                }
            }
            if running == 0 {
                break;
            }
            let Ok((i, r)) = rx.recv() else {
                break; // unreachable: `tx` is held here
            };
            running -= 1;
            failed |= r.is_err();
            results[i] = Some(r);
            let before = leading;
            while results.get(leading).is_some_and(Option::is_some) {
                leading += 1;
            }
            if leading > before {
                done(leading);
            }
        }
        // In job order, so the error reported is the earliest; jobs never started after a
        // failure are `None` and only possible behind an error.
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(EngineError::Inference("not decoded".into()))))
            .collect()
    }
}

/// A batch job's way back: sends its result, or, dropped unsent (the job panicked, or the
/// pool shut down before running it), a failure, so the waiting thread never hangs.
struct Reply<T> {
    index: usize,
    tx: Option<std::sync::mpsc::Sender<(usize, Result<T, EngineError>)>>,
}

impl<T> Reply<T> {
    fn new(index: usize, tx: std::sync::mpsc::Sender<(usize, Result<T, EngineError>)>) -> Self {
        Self {
            index,
            tx: Some(tx),
        }
    }

    fn send(mut self, result: Result<T, EngineError>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.index, result));
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let failed = EngineError::Inference("the inference worker failed".into());
            let _ = tx.send((self.index, Err(failed)));
        }
    }
}

fn worker_loop(shared: &Shared, states: &mut [Box<dyn Recogniser>]) {
    loop {
        let job = {
            let mut jobs = shared.jobs.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(j) = jobs.next() {
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
        if let Err(e) = crate::runtime::contain(|| job(states)) {
            tracing::error!("an inference job failed, its caller gets an error: {e}");
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
