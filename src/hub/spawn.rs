//! Spawned async handlers: the `spawn` terminal of [`ObserverBuilder`], its
//! [`SpawnOptions`] and its guard, [`SpawnedHandler`] (which documents the contract).

use std::any::Any;
use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::ThreadId;

use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::hub::builder::BufferPolicy;
use crate::hub::engine::PanicPolicy;
use crate::hub::stream::BufferView;
use crate::hub::subscription::Subscription;
use crate::{
    BufferStats, Notification, NotificationStream, ObserverBuilder, ObserverId, RecvError,
};

/// How a spawned handler runs: on which runtime, how many calls at once, and whether
/// dropping it drains its buffer.
///
/// Passed to [`ObserverBuilder::spawn_with`]. The default (also [`SpawnOptions::new`]) is the
/// current tokio runtime, one call at a time, no drain on drop.
///
/// ```
/// use herald::{NotificationCenter, Notification, SpawnOptions};
/// use std::sync::Arc;
///
/// struct Resize(u32);
/// impl Notification for Resize {}
///
/// // Outside any runtime: name the runtime explicitly.
/// let runtime = tokio::runtime::Runtime::new().unwrap();
/// let center = NotificationCenter::new();
/// let options = SpawnOptions::new()
///     .handle(runtime.handle().clone())
///     .concurrency(2)
///     .drain_on_drop(true);
/// let resizer = center
///     .observer::<Resize>()
///     .spawn_with(options, |n: Arc<Resize>| async move { assert!(n.0 > 0) });
/// center.post(Resize(640));
/// runtime.block_on(resizer.drain());
/// ```
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    concurrency: usize,
    drain_on_drop: bool,
    handle: Option<Handle>,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            concurrency: 1,
            drain_on_drop: false,
            handle: None,
        }
    }
}

impl SpawnOptions {
    /// The defaults: the current runtime, one call at a time, no drain on drop.
    ///
    /// ```
    /// let options = herald::SpawnOptions::new();
    /// # let _ = options;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Up to `limit` calls of the handler run at once (default 1: one at a time, in post
    /// order). 0 counts as 1.
    ///
    /// ```
    /// let options = herald::SpawnOptions::new().concurrency(8);
    /// # let _ = options;
    /// ```
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// With `true`, dropping the [`SpawnedHandler`] unsubscribes it but lets its task handle
    /// the values already buffered (in the background) instead of discarding them.
    ///
    /// ```
    /// let options = herald::SpawnOptions::new().drain_on_drop(true);
    /// # let _ = options;
    /// ```
    pub fn drain_on_drop(mut self, drain: bool) -> Self {
        self.drain_on_drop = drain;
        self
    }

    /// Runs the handler on this runtime instead of the current one (needed outside a runtime).
    ///
    /// ```
    /// let runtime = tokio::runtime::Runtime::new().unwrap();
    /// let options = herald::SpawnOptions::new().handle(runtime.handle().clone());
    /// # let _ = options;
    /// ```
    pub fn handle(mut self, handle: Handle) -> Self {
        self.handle = Some(handle);
        self
    }
}

impl<N: Notification, P: BufferPolicy<N>> ObserverBuilder<N, P> {
    /// Runs an async handler on the current tokio runtime for each notification, one call at a
    /// time, in post order (see [`SpawnedHandler`] for the whole
    /// contract). Buffered under the builder's [`policy`](Self::policy).
    ///
    /// # Panics
    /// When called outside a tokio runtime (like `tokio::spawn`). Use
    /// [`spawn_with`](Self::spawn_with) and [`SpawnOptions::handle`] there.
    ///
    /// ```
    /// use herald::{NotificationCenter, Notification};
    /// use std::sync::Arc;
    ///
    /// struct Saved { id: u32 }
    /// impl Notification for Saved {}
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// let _indexer = center.observer::<Saved>().spawn(move |n: Arc<Saved>| {
    ///     let tx = tx.clone();
    ///     async move { tx.send(n.id).unwrap() }
    /// });
    /// center.post(Saved { id: 1 });
    /// center.post(Saved { id: 2 });
    /// assert_eq!(rx.recv().await, Some(1));
    /// assert_eq!(rx.recv().await, Some(2));
    /// # }
    /// ```
    pub fn spawn<F, Fut>(self, handler: F) -> SpawnedHandler
    where
        F: FnMut(Arc<N>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.spawn_with(SpawnOptions::default(), handler)
    }

    /// [`spawn`](Self::spawn) with options: the runtime, a concurrency limit, drain on drop.
    ///
    /// # Panics
    /// When no [`handle`](SpawnOptions::handle) is given and this is called outside a tokio
    /// runtime.
    ///
    /// ```
    /// use herald::{NotificationCenter, Notification, Overflow, SpawnOptions};
    /// use std::sync::Arc;
    ///
    /// struct Thumbnail(u32);
    /// impl Notification for Thumbnail {}
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let worker = center
    ///     .observer::<Thumbnail>()
    ///     .policy(Overflow::DropNewest { capacity: 100 })
    ///     .spawn_with(SpawnOptions::new().concurrency(3), |n: Arc<Thumbnail>| async move {
    ///         let _ = n.0;
    ///     });
    /// center.post(Thumbnail(7));
    /// worker.drain().await;
    /// # }
    /// ```
    pub fn spawn_with<F, Fut>(self, options: SpawnOptions, handler: F) -> SpawnedHandler
    where
        F: FnMut(Arc<N>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = match options.handle {
            Some(h) => h,
            None => Handle::try_current().unwrap_or_else(|_| {
                panic!(
                    "herald: ObserverBuilder::spawn needs a tokio runtime; call it inside one, \
                     or pass SpawnOptions::new().handle(..) to spawn_with"
                )
            }),
        };
        let core = self.target.0.clone();
        let (id, receiver, buffer) = self.into_buffered();
        let subscription = Subscription::of(&core, id);
        // The task's stream holds no unsubscribe handle of its own: the guard owns the
        // subscription, so dropping the guard unsubscribes synchronously.
        let stream = NotificationStream::new(receiver, Subscription::inert(id));
        let policy = core.panic_policy();
        let core = Arc::downgrade(&core);
        let shared = Arc::new(Shared {
            // Counted and reported as the engine does an inline observer's panic.
            report_panic: Box::new(move |payload| match core.upgrade() {
                Some(core) => core.observer_panicked(id, payload),
                None if policy == PanicPolicy::Propagate => resume_unwind(payload),
                None => {}
            }),
            policy,
            gate: Gate::default(),
            notification: N::name(),
            panicked: AtomicU64::new(0),
            resume: Mutex::new(None),
        });
        let task = handle.spawn(run(
            stream,
            handler,
            shared.clone(),
            handle.clone(),
            options.concurrency,
        ));
        SpawnedHandler {
            subscription,
            shared,
            buffer,
            task: Some(task),
            drain_on_drop: options.drain_on_drop,
        }
    }
}

/// What the guard and the task share.
struct Shared {
    /// Counts the panic in the type's `Stats::panicked` and reports it (or resumes it under
    /// `Propagate`).
    report_panic: Box<dyn Fn(Box<dyn Any + Send>) + Send + Sync>,
    policy: PanicPolicy,
    gate: Gate,
    notification: &'static str,
    panicked: AtomicU64,
    /// Under `Propagate`, the first panic of a call that ran on a task of its own (a
    /// concurrent handler), for the handler's task to resume once its calls are done: resumed
    /// on the call's own task, it would end there, unseen by `drain`.
    resume: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Shared {
    /// Counts and reports a panic; under `Propagate`, stops the handler and resumes it.
    fn panicked(&self, payload: Box<dyn Any + Send>) {
        self.panicked.fetch_add(1, Ordering::Relaxed);
        if self.policy == PanicPolicy::Propagate {
            self.gate.close();
        }
        (self.report_panic)(payload);
    }

    /// A panic of a call running on a task of its own. Under `Propagate` it stops the
    /// handler and is kept for the handler's task ([`Shared::resume_kept`]); later ones are
    /// counted only, here and in the type's stats (one panic resumes, as with one call at a
    /// time).
    fn panicked_apart(&self, payload: Box<dyn Any + Send>) {
        if self.policy != PanicPolicy::Propagate {
            return self.panicked(payload);
        }
        self.panicked.fetch_add(1, Ordering::Relaxed);
        self.gate.close();
        let mut kept = self.resume.lock().unwrap_or_else(|p| p.into_inner());
        if kept.is_none() {
            *kept = Some(payload);
            return;
        }
        drop(kept);
        // Counted by the report, which resumes it under `Propagate`: caught here, since the
        // panic that resumes is the kept one.
        let _ = catch_unwind(AssertUnwindSafe(|| (self.report_panic)(payload)));
    }

    /// Reports and resumes the panic a concurrent call kept, on the handler's own task.
    fn resume_kept(&self) {
        let kept = self.resume.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(payload) = kept {
            (self.report_panic)(payload);
        }
    }
}

/// Where calls start: once closed, no call starts; closing waits for starts under way on
/// other threads.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    /// Threads running the synchronous start of a call right now.
    starting: Vec<ThreadId>,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters the start of a call, unless the gate is closed.
    fn enter(&self) -> Option<Starting<'_>> {
        let mut st = self.lock();
        if st.closed {
            return None;
        }
        st.starting.push(std::thread::current().id());
        Some(Starting(self))
    }

    /// Closes the gate and waits for starts on other threads (not this one: a handler that
    /// drops its own guard while starting would wait for itself).
    fn close(&self) {
        let me = std::thread::current().id();
        let mut st = self.lock();
        st.closed = true;
        while st.starting.iter().any(|t| *t != me) {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A call's synchronous start, under way.
struct Starting<'a>(&'a Gate);

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        let me = std::thread::current().id();
        let mut st = self.0.lock();
        if let Some(i) = st.starting.iter().position(|t| *t == me) {
            st.starting.swap_remove(i);
        }
        drop(st);
        self.0.cv.notify_all();
    }
}

/// A future with its panics caught: a panic while polling it ends it in `Err` (the panic's
/// payload; [`panic_message`](crate::hub::engine::panic_message) reads it) instead of
/// unwinding through the task that polls it.
pub(crate) struct CatchUnwind<F>(pub(crate) Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The handler's task: take values in order, start each call through the gate, run up to
/// `limit` at once, then wait for the last call to finish.
async fn run<N, F, Fut>(
    mut stream: NotificationStream<N>,
    mut handler: F,
    shared: Arc<Shared>,
    runtime: Handle,
    limit: usize,
) where
    N: Notification,
    F: FnMut(Arc<N>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limit));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let value = match stream.recv().await {
            Ok(v) => v,
            // Counted in the buffer's stats; the handler goes on.
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        };
        let Some(starting) = shared.gate.enter() else {
            break;
        };
        let mut call = match catch_unwind(AssertUnwindSafe(|| handler(value))) {
            Ok(fut) => CatchUnwind(Box::pin(fut)),
            Err(payload) => {
                drop(starting);
                shared.panicked(payload);
                continue;
            }
        };
        // The first poll runs the call's synchronous start inside the gate.
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut call).poll(cx))).await;
        drop(starting);
        match first {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(payload)) => shared.panicked(payload),
            Poll::Pending if limit == 1 => {
                if let Err(payload) = call.await {
                    shared.panicked(payload);
                }
            }
            Poll::Pending => {
                let shared = shared.clone();
                runtime.spawn(async move {
                    let _slot = slot;
                    if let Err(payload) = call.await {
                        shared.panicked_apart(payload);
                    }
                });
            }
        }
    }
    // Wait for every call still running (each holds a slot).
    let _ = slots.acquire_many(limit as u32).await;
    shared.resume_kept();
}

/// A running spawned handler: dropping it unsubscribes and stops the handler.
///
/// Made by [`ObserverBuilder::spawn`] and [`ObserverBuilder::spawn_with`].
///
/// A spawned handler is a buffered stream plus one tokio task that reads it: posts push into
/// the handler's bounded buffer under the builder's [`Overflow`](crate::Overflow) policy and
/// never wait for the handler (except [`post_async`](crate::NotificationCenter::post_async)
/// with a backpressure policy, as for streams). The task calls the handler once per
/// notification.
///
/// # Order and concurrency
/// By default a handler runs one call at a time, in post order: the next call starts when the
/// previous future has completed. With [`SpawnOptions::concurrency`]`(k)` up to `k` calls run
/// at once; they start in post order (the synchronous part of each call, up to its first
/// `.await`, runs in that order) and may finish in any order.
///
/// # Stopping
/// Dropping the [`SpawnedHandler`] unsubscribes it and stops it: once the drop returns, the
/// handler is never started again. Calls already started (past their first poll) finish on
/// their own; values still buffered are discarded. If another thread is starting a call at the
/// moment of the drop, the drop waits for that call's synchronous start (up to its first
/// `.await`), just as dropping an inline observer waits for a call in flight.
///
/// [`SpawnedHandler::unsubscribe`] is the drop, said out loud.
/// To lose nothing instead, either set [`SpawnOptions::drain_on_drop`] (the drop returns at
/// once; the task handles the buffered values in the background, then ends) or await
/// [`SpawnedHandler::drain`] (unsubscribes, handles every buffered value, and returns once the
/// last call has finished). [`SpawnedHandler::unsubscribe_and_wait`] is the awaitable form of
/// the drop: it returns once the calls in flight have finished.
///
/// # Panics
/// A panic in a handler (in the closure or in its future) is caught and the handler goes on
/// with the next notification. The panic is reported as an
/// [`ObserverPanicked`](crate::ObserverPanicked) notification (posted to the same center when
/// someone observes it) and counted by [`SpawnedHandler::panicked`] and in the type's [`Stats::panicked`](crate::Stats::panicked). Under
/// [`PanicPolicy::Propagate`](crate::PanicPolicy::Propagate) the handler stops instead and the
/// panic resumes in its task; [`drain`](SpawnedHandler::drain) and
/// [`unsubscribe_and_wait`](SpawnedHandler::unsubscribe_and_wait) resume it in their caller.
///
/// ```
/// use herald::{NotificationCenter, Notification, SpawnOptions};
/// use std::sync::Arc;
///
/// #[derive(Debug)]
/// struct Upload { file: String }
/// impl Notification for Upload {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let center = NotificationCenter::new();
/// let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
/// let uploader = center.observer::<Upload>().spawn_with(
///     SpawnOptions::new().concurrency(4),
///     move |n: Arc<Upload>| {
///         let done = done_tx.clone();
///         async move {
///             tokio::task::yield_now().await; // the real upload
///             done.send(n.file.clone()).unwrap();
///         }
///     },
/// );
/// center.post(Upload { file: "a.png".into() });
/// center.post(Upload { file: "b.png".into() });
/// uploader.drain().await; // every buffered upload handled
/// let mut files = vec![done_rx.recv().await.unwrap(), done_rx.recv().await.unwrap()];
/// files.sort();
/// assert_eq!(files, ["a.png", "b.png"]);
/// # }
/// ```
///
/// # Example: drain
/// ```
/// use herald::{NotificationCenter, Notification};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// struct Tick;
/// impl Notification for Tick {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let center = NotificationCenter::new();
/// let calls = Arc::new(AtomicUsize::new(0));
/// let c = calls.clone();
/// let handler = center.observer::<Tick>().spawn(move |_: Arc<Tick>| {
///     c.fetch_add(1, Ordering::SeqCst);
///     async {}
/// });
/// center.post(Tick);
/// handler.drain().await; // handles the buffered Tick, then stops
/// assert_eq!(calls.load(Ordering::SeqCst), 1);
/// assert_eq!(center.post(Tick).received, 0);
/// # }
/// ```
#[must_use = "dropping a SpawnedHandler stops it at once; call .detach() to keep it"]
pub struct SpawnedHandler {
    subscription: Subscription,
    shared: Arc<Shared>,
    buffer: Arc<dyn BufferView>,
    task: Option<JoinHandle<()>>,
    drain_on_drop: bool,
}

impl SpawnedHandler {
    /// The subscription's id (as in [`ObserverPanicked::observer`](crate::ObserverPanicked::observer)).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev; impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let h = center.observer::<Ev>().spawn(|_| async {});
    /// assert_eq!(center.stats::<Ev>().buffers[0].observer, h.id());
    /// # }
    /// ```
    pub fn id(&self) -> ObserverId {
        self.subscription.id()
    }

    /// The handler's buffer counters: values waiting, taken by the handler, lost to the
    /// overflow policy.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev; impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let h = center.observer::<Ev>().spawn(|_| async {});
    /// center.post(Ev);
    /// assert_eq!(h.stats().depth, 1); // the task has not run yet
    /// # }
    /// ```
    pub fn stats(&self) -> BufferStats {
        self.buffer.view(self.id())
    }

    /// How many calls of this handler panicked.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # use std::sync::Arc;
    /// # struct Ev; impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let h = center.observer::<Ev>().spawn(|_: Arc<Ev>| async { panic!("bad") });
    /// center.post(Ev);
    /// tokio::task::yield_now().await;
    /// assert_eq!(h.panicked(), 1);
    /// # }
    /// ```
    pub fn panicked(&self) -> u64 {
        self.shared.panicked.load(Ordering::Relaxed)
    }

    /// Unsubscribes, handles every value already buffered, and returns once the last call has
    /// finished.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # use std::sync::{Arc, Mutex};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// let h = center.observer::<Ev>().spawn(move |n: Arc<Ev>| {
    ///     let s = s.clone();
    ///     async move { s.lock().unwrap().push(n.0) }
    /// });
    /// for i in 0..3 { center.post(Ev(i)); }
    /// h.drain().await;
    /// assert_eq!(*seen.lock().unwrap(), [0, 1, 2]);
    /// # }
    /// ```
    pub async fn drain(mut self) {
        self.subscription.unsubscribe_now();
        self.join().await;
    }

    /// Unsubscribes and stops like [`unsubscribe`](Self::unsubscribe) (no call starts once this
    /// is called; buffered values are discarded), then returns once the calls in flight have
    /// finished.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # use std::sync::Arc;
    /// # struct Ev; impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let h = center.observer::<Ev>().spawn(|_: Arc<Ev>| async {});
    /// center.post(Ev);
    /// h.unsubscribe_and_wait().await; // the buffered Ev is never handled
    /// # }
    /// ```
    pub async fn unsubscribe_and_wait(mut self) {
        self.shared.gate.close();
        self.subscription.unsubscribe_now();
        self.join().await;
    }

    /// Unsubscribes and stops the handler now, synchronously: the same as dropping it, said
    /// out loud. Once it returns, no call starts (calls already started finish on their own;
    /// values still buffered are discarded, unless
    /// [`drain_on_drop`](SpawnOptions::drain_on_drop) was set).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # use std::sync::Arc;
    /// # struct Ev; impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let h = center.observer::<Ev>().spawn(|_: Arc<Ev>| async { unreachable!() });
    /// center.post(Ev);
    /// h.unsubscribe();
    /// tokio::task::yield_now().await;
    /// assert_eq!(center.post(Ev).received, 0);
    /// # }
    /// ```
    pub fn unsubscribe(self) {
        drop(self);
    }

    async fn join(&mut self) {
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
            && e.is_panic()
        {
            resume_unwind(e.into_panic());
        }
    }

    /// Keeps the handler running for the life of the center, without a guard.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # use std::sync::Arc;
    /// # struct Ev; impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// center.observer::<Ev>().spawn(|_: Arc<Ev>| async {}).detach();
    /// assert_eq!(center.post(Ev).received, 1);
    /// # }
    /// ```
    pub fn detach(mut self) {
        self.task = None;
        let id = self.subscription.id();
        let subscription = std::mem::replace(&mut self.subscription, Subscription::inert(id));
        subscription.detach();
        self.drain_on_drop = true;
    }
}

impl Drop for SpawnedHandler {
    fn drop(&mut self) {
        if !self.drain_on_drop {
            self.shared.gate.close();
        }
        self.subscription.unsubscribe_now();
    }
}

impl fmt::Debug for SpawnedHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnedHandler")
            .field("id", &self.id())
            .field("notification", &self.shared.notification)
            .field("drain_on_drop", &self.drain_on_drop)
            .finish_non_exhaustive()
    }
}
