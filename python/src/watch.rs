//! `pulsedb.Watch`: a collective's changes as a Python iterator and async
//! iterator.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use pulsedb::wire::WatchEventJson;
use pulsedb::{CollectiveId, PulseHandle, WatchEvent, WatchStream};
use pyo3::exceptions::{PyStopAsyncIteration, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::PyCFunction;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use crate::call::{run, runtime, same_process, Mode, Pending};
use crate::convert::to_py;
use crate::errors;

/// How long a blocking `next` waits before looking for a pending signal
/// (Ctrl-C) and waiting again.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Events of one collective from the moment `watch` was called; ends when
/// the collective is deleted, the database closed, or `close` is called.
#[pyclass(module = "pulsedb", frozen)]
pub(crate) struct Watch {
    state: Arc<Mutex<State>>,
    /// Set by `close`; wakes a `next` waiting for an event.
    closing: Arc<Closing>,
    /// Events taken for an `anext` whose future was cancelled meanwhile:
    /// the next iterations answer them first.
    returned: Arc<StdMutex<VecDeque<WatchEvent>>>,
    /// The process that opened it (see [`same_process`]).
    pid: u32,
}

enum State {
    /// The subscription is made; its check that the collective exists is
    /// still running.
    Starting(JoinHandle<pulsedb::Result<WatchStream>>),
    Open(WatchStream),
    Ended,
}

impl Watch {
    /// Subscribes now, so that every change committed after this call is
    /// seen. Blocking handles wait for the collective check; asyncio ones
    /// leave it running and report its failure at the first `anext`.
    pub(crate) fn start(
        py: Python<'_>,
        mode: Mode,
        db: PulseHandle,
        c: CollectiveId,
    ) -> PyResult<Py<PyAny>> {
        let subscribe = async move { db.watch_experiences(c).await };
        match mode {
            Mode::Blocking => run(py, mode, subscribe, |py, stream| {
                Watch::with(py, State::Open(stream))
            }),
            Mode::Async => {
                let rt = runtime()?;
                let _entered = rt.enter();
                let mut subscribe = Box::pin(subscribe);
                // The first poll subscribes (the engine does it before its
                // first wait); the rest runs on the runtime.
                let state = match subscribe
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                {
                    Poll::Ready(Ok(stream)) => State::Open(stream),
                    Poll::Ready(Err(e)) => return Err(errors::to_py(py, e)),
                    Poll::Pending => State::Starting(rt.spawn(subscribe)),
                };
                Watch::with(py, state)
            }
        }
    }

    fn with(py: Python<'_>, state: State) -> PyResult<Py<PyAny>> {
        let watch = Watch {
            state: Arc::new(Mutex::new(state)),
            closing: Arc::new(Closing::default()),
            returned: Arc::default(),
            pid: std::process::id(),
        };
        Ok(Py::new(py, watch)?.into_any())
    }
}

/// `close`'s mark: a flag for iterations to come, a wake-up for the one
/// waiting.
#[derive(Default)]
struct Closing {
    closed: AtomicBool,
    notify: Notify,
}

impl Closing {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// The next event, or `None` once the stream has ended or the watch was
/// closed.
async fn next(
    state: &Mutex<State>,
    closing: &Closing,
    returned: &StdMutex<VecDeque<WatchEvent>>,
) -> pulsedb::Result<Option<WatchEvent>> {
    let closed = closing.notify.notified();
    tokio::pin!(closed);
    // Registered before the flag is read: a `close` either is seen here or
    // wakes the wait below.
    closed.as_mut().enable();
    let mut state = state.lock().await;
    if closing.closed.load(Ordering::SeqCst) {
        *state = State::Ended;
        return Ok(None);
    }
    let kept = returned
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop_front();
    if let Some(event) = kept {
        return Ok(Some(event));
    }
    if let State::Starting(handle) = &mut *state {
        let started = handle.await.unwrap_or(Err(pulsedb::Error::Closed));
        *state = match started {
            Ok(stream) => State::Open(stream),
            Err(e) => {
                *state = State::Ended;
                return Err(e);
            }
        };
    }
    let State::Open(stream) = &mut *state else {
        return Ok(None);
    };
    let event = tokio::select! {
        event = poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx)) => event,
        () = closed => None,
    };
    if event.is_none() {
        *state = State::Ended;
    }
    Ok(event)
}

fn event(py: Python<'_>, e: WatchEvent) -> PyResult<Py<PyAny>> {
    to_py(py, &WatchEventJson::from(e))
}

#[pymethods]
impl Watch {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        same_process(self.pid)?;
        let rt = runtime()?;
        loop {
            let (state, closing) = (Arc::clone(&self.state), Arc::clone(&self.closing));
            let returned = Arc::clone(&self.returned);
            let waited = py.detach(|| {
                rt.block_on(async move {
                    tokio::time::timeout(SIGNAL_CHECK, next(&state, &closing, &returned)).await
                })
            });
            match waited {
                Ok(Ok(Some(e))) => return event(py, e),
                Ok(Ok(None)) => return Err(PyStopIteration::new_err(())),
                Ok(Err(e)) => return Err(errors::to_py(py, e)),
                Err(_elapsed) => py.check_signals()?,
            }
        }
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        same_process(self.pid)?;
        let rt = runtime()?;
        let (pending, future) = Pending::new(py)?;
        let (state, closing) = (Arc::clone(&self.state), Arc::clone(&self.closing));
        let returned = Arc::clone(&self.returned);
        let task = rt.spawn(async move {
            let answer = next(&state, &closing, &returned).await;
            let settle = move || {
                Python::try_attach(|py| match answer {
                    Ok(Some(e)) => {
                        let value = event(py, e.clone());
                        let give_back = move || {
                            returned
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push_front(e);
                        };
                        pending.settle_or_return(py, value, give_back);
                    }
                    Ok(None) => pending.settle(py, Err(PyStopAsyncIteration::new_err(()))),
                    Err(e) => pending.settle(py, Err(errors::to_py(py, e))),
                })
            };
            // As `call::run`: the Python objects are made off the async workers.
            drop(tokio::task::spawn_blocking(settle));
        });
        // A cancelled `anext` (a `wait_for` that timed out) stops waiting
        // here too: nothing piles up behind a consumer polling with
        // timeouts. An event it already took is given back (above).
        let abort = task.abort_handle();
        let on_done = PyCFunction::new_closure(py, None, None, move |args, _| -> PyResult<()> {
            let (done,) = args.extract::<(Bound<'_, PyAny>,)>()?;
            if done.call_method0("cancelled")?.is_truthy()? {
                abort.abort();
            }
            Ok(())
        })?;
        future
            .bind(py)
            .call_method1("add_done_callback", (on_done,))?;
        Ok(future)
    }

    /// Events dropped for this watcher because it fell behind (its buffer
    /// was full); catch up with `changes`.
    #[getter]
    fn missed(&self) -> u64 {
        match self.state.try_lock().as_deref() {
            Ok(State::Open(stream)) => stream.missed(),
            _ => 0,
        }
    }

    /// Ends the iteration; a waiting `next` ends with it.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        same_process(self.pid)?;
        let rt = runtime()?;
        let (state, closing) = (Arc::clone(&self.state), Arc::clone(&self.closing));
        py.detach(|| {
            rt.block_on(async move {
                // Wakes the `next` holding the state, then ends it.
                closing.close();
                *state.lock().await = State::Ended;
            })
        });
        Ok(())
    }
}
