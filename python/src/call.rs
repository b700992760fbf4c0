//! Running an engine future for Python: blocking with the GIL released, or
//! as an asyncio future settled from PulseDB's runtime.

use std::future::Future;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyCFunction;
use tokio::runtime::Runtime;

use crate::errors;

/// How a handle answers: a value (blocking the calling thread, not the
/// GIL), or an asyncio future of the running event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Blocking,
    Async,
}

/// The runtime every handle of the process shares, started on first use.
///
/// A forked child (`multiprocessing`, pre-forking servers) inherits the
/// parent's runtime without its threads: it gets a runtime of its own. The
/// parent's is left alone (its memory is the child's copy; nothing runs it).
pub(crate) fn runtime() -> PyResult<&'static Runtime> {
    /// The runtime and the process that started it, leaked: never freed.
    static CURRENT: AtomicPtr<(u32, Runtime)> = AtomicPtr::new(std::ptr::null_mut());
    static STARTING: Mutex<()> = Mutex::new(());
    let pid = std::process::id();
    let ours = || {
        // SAFETY: only pointers from `Box::leak` below are stored.
        unsafe { CURRENT.load(Ordering::Acquire).as_ref() }
            .filter(|(owner, _)| *owner == pid)
            .map(|(_, runtime)| runtime)
    };
    if let Some(runtime) = ours() {
        return Ok(runtime);
    }
    let _starting = STARTING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = ours() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pulsedb")
        .build()
        .map_err(|e| {
            errors::PulseDBError::new_err(format!("cannot start the PulseDB runtime: {e}"))
        })?;
    let started: &'static (u32, Runtime) = Box::leak(Box::new((pid, runtime)));
    CURRENT.store(std::ptr::from_ref(started).cast_mut(), Ordering::Release);
    Ok(&started.1)
}

/// Refuses a handle (or watch) used in another process than the one that
/// opened it: after a fork, its threads are gone from the child.
pub(crate) fn same_process(opened_in: u32) -> PyResult<()> {
    if std::process::id() == opened_in {
        Ok(())
    } else {
        Err(errors::PulseDBError::new_err(
            "this handle was opened in the parent process; a forked child must open the database itself",
        ))
    }
}

/// Runs `work` and turns its answer into a Python object with `convert`.
///
/// Blocking: on the calling thread (`block_on`), the GIL released meanwhile.
/// Async: spawned on the runtime; the returned asyncio future is settled on
/// the event loop's thread (`call_soon_threadsafe`). The Python objects are
/// made on the blocking pool, since taking the GIL may wait and the async
/// workers must not.
pub(crate) fn run<T, F, C>(py: Python<'_>, mode: Mode, work: F, convert: C) -> PyResult<Py<PyAny>>
where
    T: Send + 'static,
    F: Future<Output = pulsedb::Result<T>> + Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let rt = runtime()?;
    match mode {
        Mode::Blocking => {
            let answer = py.detach(|| rt.block_on(work));
            convert(py, answer.map_err(|e| errors::to_py(py, e))?)
        }
        Mode::Async => {
            let (pending, future) = Pending::new(py)?;
            let task = rt.spawn(work);
            rt.spawn(async move {
                // A call that panicked still answers, with an error.
                let answer = task.await.unwrap_or_else(|e| {
                    Err(pulsedb::Error::Io(std::io::Error::other(format!(
                        "the call stopped before answering: {e}"
                    ))))
                });
                // An interpreter shutting down has nobody left to answer.
                let settle = move || {
                    Python::try_attach(|py| {
                        let value = answer
                            .map_err(|e| errors::to_py(py, e))
                            .and_then(|v| convert(py, v));
                        pending.settle(py, value);
                    })
                };
                // Nothing waits for the settling: the future is the answer.
                drop(tokio::task::spawn_blocking(settle));
            });
            Ok(future)
        }
    }
}

/// An asyncio future and its loop, waiting for an answer.
pub(crate) struct Pending {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
}

impl Pending {
    /// A future of the running loop (called on the loop's thread).
    pub(crate) fn new(py: Python<'_>) -> PyResult<(Pending, Py<PyAny>)> {
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let future = event_loop.call_method0("create_future")?;
        let handle = future.clone().unbind();
        Ok((
            Pending {
                event_loop: event_loop.unbind(),
                future: future.unbind(),
            },
            handle,
        ))
    }

    /// Hands `value` to the future on its loop. A loop already closed has
    /// nobody waiting, so its refusal is ignored.
    pub(crate) fn settle(self, py: Python<'_>, value: PyResult<Py<PyAny>>) {
        if let Ok(setter) = settler(py) {
            self.settle_with(py, setter, value);
        }
    }

    /// As [`Pending::settle`]; when the future was cancelled before the
    /// value reached it, `unwanted` takes the value back (a watch keeps
    /// the event for the next iteration).
    pub(crate) fn settle_or_return<F>(self, py: Python<'_>, value: PyResult<Py<PyAny>>, unwanted: F)
    where
        F: FnOnce() + Send + 'static,
    {
        let unwanted = Mutex::new(Some(unwanted));
        let setter = PyCFunction::new_closure(py, None, None, move |args, _| -> PyResult<()> {
            let (future, ok, value) =
                args.extract::<(Bound<'_, PyAny>, bool, Bound<'_, PyAny>)>()?;
            if future.call_method0("done")?.is_truthy()? {
                let give_back = unwanted
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(give_back) = give_back {
                    give_back();
                }
                return Ok(());
            }
            settle_future(&future, ok, value)
        });
        if let Ok(setter) = setter {
            self.settle_with(py, setter.as_any(), value);
        }
    }

    fn settle_with(self, py: Python<'_>, setter: &Bound<'_, PyAny>, value: PyResult<Py<PyAny>>) {
        let (ok, value) = match value {
            Ok(v) => (true, v),
            Err(e) => (false, e.into_value(py).into_any()),
        };
        let _ = self.event_loop.call_method1(
            py,
            "call_soon_threadsafe",
            (setter, self.future, ok, value),
        );
    }
}

/// Sets a future's result or exception unless it was cancelled meanwhile.
#[pyfunction]
fn settle_future(future: &Bound<'_, PyAny>, ok: bool, value: Bound<'_, PyAny>) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    let method = if ok { "set_result" } else { "set_exception" };
    future.call_method1(method, (value,))?;
    Ok(())
}

fn settler(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static SETTLER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    SETTLER
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(wrap_pyfunction!(settle_future, py)?.into_any().unbind())
        })
        .map(|f| f.bind(py))
}
