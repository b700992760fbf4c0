//! The embedding queue: one thread per handle runs the embedder, and the
//! texts of every caller that queued while a forward pass ran go into the
//! next one — group commit, for a model.
//!
//! Why a thread of its own: a forward pass is CPU work of milliseconds to
//! seconds, which must not run on an async worker; and one pass at a time,
//! each as large as the queue allows, uses the cores better than several
//! small passes fighting for them (the model parallelises a pass itself).
//!
//! Bounds: at most [`QUEUE_DEPTH`] jobs wait (a caller past that waits to
//! queue), a job holds at most [`MAX_JOB_TEXTS`] texts (longer inputs are
//! queued a job at a time, so one large batch does not hold everyone else
//! back for its whole length), and a pass takes at most [`MAX_PASS_TEXTS`]
//! texts. The embedder bounds the tokens of each pass it runs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use crate::actors::WorkPermit;
use crate::api::Embedder;
use crate::error::{Error, Result};

/// Jobs that may wait for the embedder thread.
pub(crate) const QUEUE_DEPTH: usize = 256;
/// Texts in one job: a caller's input is split into jobs of this size.
pub(crate) const MAX_JOB_TEXTS: usize = 64;
/// Texts gathered into one call of the embedder.
pub(crate) const MAX_PASS_TEXTS: usize = 128;
/// After a pass shared by several callers, how long the next one waits for
/// them to come back (a pass takes tens of milliseconds; without the wait,
/// the first caller back would set off a pass of one and the others queue
/// behind it).
const LINGER: Duration = Duration::from_millis(2);
const LINGER_POLL: Duration = Duration::from_micros(100);

/// One caller's texts and where their vectors go.
struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>>>,
    /// The caller's share of the in-flight bound, held until answered.
    _permit: Option<WorkPermit>,
}

/// The sending side of a handle's embedding queue. The thread ends when
/// the last `EmbedQueue` is dropped.
pub(crate) struct EmbedQueue {
    jobs: mpsc::Sender<Job>,
}

impl EmbedQueue {
    /// Starts the embedder thread.
    ///
    /// # Errors
    /// `Io` when the thread cannot be spawned.
    pub(crate) fn start(embedder: Arc<dyn Embedder>) -> Result<EmbedQueue> {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("pulsedb-embed".into())
            .spawn(move || run(embedder.as_ref(), queue))?;
        Ok(EmbedQueue { jobs })
    }

    /// Embeds `texts` (one vector per text, in order), sharing forward
    /// passes with whoever else is queued.
    ///
    /// # Errors
    /// `Embedder` when the model fails or its thread is gone.
    pub(crate) async fn embed(
        &self,
        texts: Vec<String>,
        permit: Option<WorkPermit>,
    ) -> Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::with_capacity(texts.len());
        let mut texts = texts.into_iter().peekable();
        while texts.peek().is_some() {
            let chunk: Vec<String> = texts.by_ref().take(MAX_JOB_TEXTS).collect();
            let (reply, answer) = oneshot::channel();
            let job = Job {
                texts: chunk,
                reply,
                _permit: permit.clone(),
            };
            self.jobs.send(job).await.map_err(|_| thread_gone())?;
            vectors.extend(answer.await.map_err(|_| thread_gone())??);
        }
        Ok(vectors)
    }
}

fn thread_gone() -> Error {
    Error::Embedder {
        reason: "the embedder thread has stopped".into(),
    }
}

/// The embedder thread: take whatever is queued (up to a pass), run it,
/// answer each job with its share.
fn run(embedder: &dyn Embedder, mut queue: mpsc::Receiver<Job>) {
    // Callers answered by the last pass, who are likely to come back.
    let mut last_callers = 0;
    while let Some(first) = queue.blocking_recv() {
        let mut jobs = vec![first];
        let mut count = jobs[0].texts.len();
        let linger_until = Instant::now() + LINGER;
        loop {
            if count >= MAX_PASS_TEXTS {
                break;
            }
            match queue.try_recv() {
                Ok(job) => {
                    count += job.texts.len();
                    jobs.push(job);
                }
                Err(TryRecvError::Empty)
                    if last_callers > 1
                        && jobs.len() < last_callers
                        && Instant::now() < linger_until =>
                {
                    std::thread::sleep(LINGER_POLL);
                }
                Err(_) => break,
            }
        }
        last_callers = jobs.len();
        // A caller that stopped waiting needs no vectors.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let count = jobs.iter().map(|job| job.texts.len()).sum();
        let result = {
            let texts: Vec<&str> = jobs
                .iter()
                .flat_map(|job| job.texts.iter().map(String::as_str))
                .collect();
            catch_unwind(AssertUnwindSafe(|| embedder.embed_batch(&texts))).unwrap_or_else(|_| {
                Err(Error::Embedder {
                    reason: "the embedder panicked".into(),
                })
            })
        };
        answer(jobs, count, result);
    }
}

/// Splits one pass's vectors among its jobs, in order.
fn answer(jobs: Vec<Job>, texts: usize, result: Result<Vec<Vec<f32>>>) {
    let vectors = match result {
        Ok(v) if v.len() == texts => v,
        Ok(v) => {
            let reason = format!("returned {} embeddings for {texts} texts", v.len());
            for job in jobs {
                let _ = job.reply.send(Err(Error::Embedder {
                    reason: reason.clone(),
                }));
            }
            return;
        }
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(e.duplicate()));
            }
            return;
        }
    };
    let mut vectors = vectors.into_iter();
    for job in jobs {
        let share: Vec<Vec<f32>> = vectors.by_ref().take(job.texts.len()).collect();
        let _ = job.reply.send(Ok(share));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// Records the size of every pass; each vector encodes its text's length.
    struct Recording {
        passes: Mutex<Vec<usize>>,
        /// While set, the model waits before answering.
        hold: AtomicBool,
    }

    impl Embedder for Recording {
        fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
            if texts.contains(&"boom") {
                panic!("boom");
            }
            while self.hold.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            if let Ok(mut p) = self.passes.lock() {
                p.push(texts.len());
            }
            Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect())
        }
        fn dimension(&self) -> usize {
            2
        }
        fn model_id(&self) -> &str {
            "recording"
        }
    }

    fn recording() -> Arc<Recording> {
        Arc::new(Recording {
            passes: Mutex::new(Vec::new()),
            hold: AtomicBool::new(false),
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_queued_during_a_pass_share_the_next_one() {
        let model = recording();
        let queue = Arc::new(EmbedQueue::start(model.clone()).unwrap());
        // Hold the model so that everything below queues behind one pass.
        model.hold.store(true, Ordering::SeqCst);
        let first = {
            let q = queue.clone();
            tokio::spawn(async move { q.embed(vec!["a".into()], None).await })
        };
        // Let the thread take the first job and block inside the model.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut waiting = Vec::new();
        for i in 0..20 {
            let q = queue.clone();
            let text = "x".repeat(i + 1);
            waiting.push(tokio::spawn(async move { q.embed(vec![text], None).await }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        model.hold.store(false, Ordering::SeqCst);
        assert_eq!(first.await.unwrap().unwrap(), vec![vec![1.0, 1.0]]);
        for (i, w) in waiting.into_iter().enumerate() {
            assert_eq!(w.await.unwrap().unwrap(), vec![vec![(i + 1) as f32, 1.0]]);
        }
        let passes = model.passes.lock().unwrap().clone();
        assert_eq!(passes.iter().sum::<usize>(), 21);
        assert!(
            passes.len() <= 3,
            "20 callers queued behind one pass took {} passes: {passes:?}",
            passes.len()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_input_is_split_into_bounded_passes_in_order() {
        let model = recording();
        let queue = EmbedQueue::start(model.clone()).unwrap();
        let texts: Vec<String> = (0..300).map(|i| "y".repeat(i % 7 + 1)).collect();
        let vectors = queue.embed(texts.clone(), None).await.unwrap();
        let expect: Vec<Vec<f32>> = texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect();
        assert_eq!(vectors, expect);
        let passes = model.passes.lock().unwrap().clone();
        assert!(passes.iter().all(|n| *n <= MAX_JOB_TEXTS), "{passes:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_model_fails_its_pass_and_the_thread_survives() {
        let model = recording();
        let queue = EmbedQueue::start(model.clone()).unwrap();
        let err = queue.embed(vec!["boom".into()], None).await.unwrap_err();
        assert!(matches!(err, Error::Embedder { .. }), "{err:?}");
        let ok = queue.embed(vec!["fine".into()], None).await.unwrap();
        assert_eq!(ok, vec![vec![4.0, 1.0]]);
    }
}
