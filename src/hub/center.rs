//! [`NotificationCenter`], the hub, and [`Poster`], its typed handle for hot paths.

use std::any::{Any, TypeId};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock, Weak};

use crate::hub::engine::{Core, ErasedChannel, HubReport, Reports, Unsubscribe, Waiting, WildSpec};
use crate::hub::rcu::{Domain, Guarded, ReadGuard};
use crate::hub::stats::{PostReport, Stats};
use crate::hub::subscription::Subscription;
use crate::{DeadNotification, Notification, ObserverPanicked, SenderId};

pub use crate::hub::engine::PanicPolicy;

/// Hashes a `TypeId` (already a hash) by taking its bits as they are.
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// The channels of a center by type: open addressing over a power-of-two table, read inside a
/// read section on every `center.post` (one hash of a constant, usually one probe).
#[derive(Clone)]
struct TypeMap {
    slots: Box<[Option<Slot>]>,
    len: usize,
}

/// One channel in the map: its `Core<N>` as a plain pointer for the post path, as `Any` for
/// handing out `Arc<Core<N>>`, and as [`ErasedChannel`] for the writers.
#[derive(Clone)]
struct Slot {
    id: TypeId,
    /// The address of the `Core<N>` inside `any`, where `N` is the type of `id`.
    core: *const (),
    any: Arc<dyn Any + Send + Sync>,
    channel: Arc<dyn ErasedChannel>,
}

// SAFETY: `core` is only a second view of the value `any` owns (a `Core<N>`, which is `Send`
// and `Sync`) and is only ever turned into a shared reference (`Slot::core`).
#[allow(unsafe_code)]
unsafe impl Send for Slot {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for Slot {}

impl Slot {
    fn new<N: Notification>(core: Arc<Core<N>>) -> Self {
        Slot {
            id: TypeId::of::<N>(),
            core: Arc::as_ptr(&core).cast(),
            any: core.clone(),
            channel: core,
        }
    }

    /// The channel as `Core<N>`, if it is `N`'s.
    ///
    /// Every `center.post` comes here. `Any::downcast_ref` would make a virtual call that
    /// returns the 16-byte `TypeId` through memory, and reading it back right away stalls
    /// store forwarding (measured: a third of a one-observer post). The id is in the slot.
    #[inline]
    #[allow(unsafe_code)]
    fn core<N: Notification>(&self) -> Option<&Core<N>> {
        if self.id != TypeId::of::<N>() {
            return None;
        }
        // SAFETY: `core` points into the `Arc<Core<M>>` that `any` holds, made by `Slot::new`
        // with `id == TypeId::of::<M>()`; the id matched, so `M` is `N`. The borrow of `self`
        // keeps `any`, and so the core, alive.
        Some(unsafe { &*self.core.cast::<Core<N>>() })
    }
}

impl TypeMap {
    fn new() -> Self {
        TypeMap {
            slots: vec![None; 8].into_boxed_slice(),
            len: 0,
        }
    }

    #[inline]
    fn home(&self, id: &TypeId) -> usize {
        let hash = BuildHasherDefault::<TypeIdHasher>::default().hash_one(id);
        (hash as usize) & (self.slots.len() - 1)
    }

    #[inline]
    fn get(&self, id: &TypeId) -> Option<&Slot> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        loop {
            match &self.slots[i] {
                Some(slot) if slot.id == *id => return Some(slot),
                Some(_) => i = (i + 1) & mask,
                None => return None,
            }
        }
    }

    #[inline]
    fn core<N: Notification>(&self) -> Option<&Core<N>> {
        self.get(&TypeId::of::<N>()).and_then(Slot::core::<N>)
    }

    /// The channel of `N`, shared.
    fn arc<N: Notification>(&self) -> Option<Arc<Core<N>>> {
        self.get(&TypeId::of::<N>())
            .and_then(|slot| slot.any.clone().downcast::<Core<N>>().ok())
    }

    /// A copy with `core` added (the table stays at most half full).
    fn with<N: Notification>(&self, core: Arc<Core<N>>) -> TypeMap {
        let mut next = if (self.len + 1) * 2 > self.slots.len() {
            let mut bigger = TypeMap {
                slots: vec![None; self.slots.len() * 2].into_boxed_slice(),
                len: 0,
            };
            for slot in self.slots.iter().flatten() {
                bigger.put(slot.clone());
            }
            bigger
        } else {
            self.clone()
        };
        next.put(Slot::new(core));
        next
    }

    fn put(&mut self, slot: Slot) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(&slot.id);
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Some(slot);
        self.len += 1;
    }

    fn channels(&self) -> impl Iterator<Item = &Arc<dyn ErasedChannel>> {
        self.slots.iter().flatten().map(|slot| &slot.channel)
    }
}

/// What the center's writers share: the next type index and the wildcard subscriptions.
#[derive(Default)]
struct Registry {
    next_index: usize,
    wildcards: Vec<Arc<WildSpec>>,
}

/// The shared state behind every clone of a center.
pub(crate) struct CenterInner {
    domain: Arc<Domain>,
    /// The channels, and the lock that serializes writers of the map and of the wildcards.
    channels: Guarded<Registry, TypeMap>,
    panic_policy: PanicPolicy,
}

impl CenterInner {
    /// The center's read domain.
    pub(crate) fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The channel of `N`, if it exists.
    fn find<N: Notification>(&self) -> Option<Arc<Core<N>>> {
        let section = self.domain.read();
        self.channels.load(&section).arc::<N>()
    }

    /// The channel of `N`, made on first use.
    pub(crate) fn core<N: Notification>(self: &Arc<Self>) -> Arc<Core<N>> {
        if let Some(core) = self.find::<N>() {
            return core;
        }
        let mut w = self.channels.write();
        if let Some(core) = w.current().arc::<N>() {
            return core;
        }
        let index = w.state().next_index;
        w.state().next_index += 1;
        let reports: Weak<dyn Reports> = {
            let weak: Weak<CenterInner> = Arc::downgrade(self);
            weak
        };
        let core = Arc::new(Core::<N>::new(
            self.domain.clone(),
            index,
            self.panic_policy,
            reports,
        ));
        // Wildcards that match the new type observe it from its first post.
        for spec in w
            .state()
            .wildcards
            .iter()
            .filter(|s| s.matches(N::name(), N::NAMES_VARY))
        {
            core.add_any(spec.meta, &spec.f);
        }
        let next = w.current().with(core.clone());
        drop(w.replace(&self.domain, next));
        core
    }

    /// Adds a wildcard subscription to every matching channel, now and to come.
    pub(crate) fn add_wildcard(self: &Arc<Self>, spec: Arc<WildSpec>) -> Subscription {
        let id = spec.meta.id;
        {
            let mut w = self.channels.write();
            w.state().wildcards.push(spec.clone());
            for c in w
                .current()
                .channels()
                .filter(|c| spec.matches(c.name(), c.names_vary()))
            {
                c.add_any(spec.meta, &spec.f);
            }
        }
        // The hub's own reports are posted only into channels that exist (a report nobody
        // observes costs nothing): a wildcard that matches one makes its channel, which
        // `core` subscribes it to, as it does for any type made after the wildcard.
        if spec.matches(DeadNotification::name(), DeadNotification::NAMES_VARY) {
            self.core::<DeadNotification>();
        }
        if spec.matches(ObserverPanicked::name(), ObserverPanicked::NAMES_VARY) {
            self.core::<ObserverPanicked>();
        }
        let weak: Weak<dyn Unsubscribe> = {
            let w: Weak<CenterInner> = Arc::downgrade(self);
            w
        };
        Subscription::new(weak, id)
    }

    /// Posts `value` only if someone observes `N` (for the hub's own reports).
    fn post_if_observed<N: Notification>(&self, value: N) {
        let section = self.domain.read();
        if let Some(core) = self.channels.load(&section).core::<N>()
            && core.has_observers(&section)
        {
            core.post(&section, value, None);
        }
    }

    #[inline(always)]
    fn post<N: Notification>(self: &Arc<Self>, value: N, sender: Option<SenderId>) -> PostReport {
        // One way out, so the report is built in registers: a second path returning its own
        // report made the compiler merge the two through memory on every post.
        loop {
            {
                let section = self.domain.read();
                // The channel this thread posted into last, if it is `N`'s: no walk through
                // the type map (three dependent loads and a probe before the post could load
                // its snapshot). Either way one post, inlined once.
                let core = if let Some((id, core)) = section.memo()
                    && id == TypeId::of::<N>()
                {
                    // SAFETY: only this center's own channels are remembered in its domain
                    // (`look_up`; a slot that leaves the domain forgets), under the id of their
                    // type, which matched; the map keeps every channel for the center's life,
                    // which `self` outlasts this call.
                    #[allow(unsafe_code)]
                    unsafe {
                        core.cast::<Core<N>>().as_ref()
                    }
                } else if let Some(core) = self.look_up::<N>(&section) {
                    core
                } else {
                    drop(section);
                    self.make_channel::<N>();
                    continue;
                };
                return core.post(&section, value, sender);
            }
        }
    }

    /// The channel of `N` from the type map, remembered for this thread's next post (the
    /// post path's miss: out of line, so the post it leads to is inlined once).
    #[inline(never)]
    fn look_up<'s, N: Notification>(&'s self, section: &'s ReadGuard<'_>) -> Option<&'s Core<N>> {
        let core = self.channels.load(section).core::<N>();
        if let Some(core) = core {
            section.remember((TypeId::of::<N>(), NonNull::from(core).cast()));
        }
        core
    }

    /// The first post of a type: makes its channel.
    #[cold]
    #[inline(never)]
    fn make_channel<N: Notification>(self: &Arc<Self>) {
        drop(self.core::<N>());
    }

    /// How many notification types have a channel.
    fn types(&self) -> usize {
        self.channels.load(&self.domain.read()).len
    }
}

impl Drop for CenterInner {
    fn drop(&mut self) {
        // What the domain holds retired (the type maps that a new channel replaced) holds
        // channels, and every channel holds the domain: freed only by a grace period, which
        // a center nobody uses any more would never run again. Run one now; inside a post
        // (the last handle dropped by an observer) the garbage is urgent, and the end of
        // that post collects it.
        let _ = self.domain.synchronize();
    }
}

impl Reports for CenterInner {
    fn report(&self, report: HubReport) {
        match report {
            HubReport::Dead(n) => self.post_if_observed(n),
            HubReport::Panicked(n) => self.post_if_observed(n),
        }
    }
}

impl Unsubscribe for CenterInner {
    /// Removes a wildcard subscription from every channel, then waits for a grace period.
    fn unsubscribe(&self, id: crate::ObserverId) {
        {
            let mut w = self.channels.write();
            w.state().wildcards.retain(|s| s.meta.id != id);
            for c in w.current().channels() {
                c.remove_any(id);
            }
        }
        // Frees what the channels deferred, once no post can still call the observer (from
        // inside a post: later).
        let _ = self.domain.synchronize();
    }
}

/// The notification center: post typed notifications; observers registered for them are
/// called without knowing who posted.
///
/// Cheap to clone (an `Arc` inside), `Send + Sync`. Every clone is the same center. A process
/// can also share [`NotificationCenter::global`].
///
/// ```
/// use herald::{NotificationCenter, Notification};
///
/// #[derive(Debug)]
/// struct UserSignedIn { name: String }
/// impl Notification for UserSignedIn {}
///
/// let center = NotificationCenter::new();
/// let _greeter = center.observe(|n: &UserSignedIn| println!("welcome, {}", n.name));
/// let report = center.post(UserSignedIn { name: "ada".into() });
/// assert_eq!(report.received, 1);
/// ```
///
/// The hub's contracts are documented, each with an example, in [`crate::contracts`].
///
/// Dropping the last clone ends the center: streams close once their buffered values are
/// received, spawned handlers stop, observers' closures are freed. Like an unsubscribe, that
/// drop waits for posts in progress on other threads (through a [`Poster`]) to finish; from
/// inside a post it does not wait, and the post's end frees what is left.
///
/// ```
/// # use herald::{NotificationCenter, Notification, TryRecvError};
/// # struct A; impl Notification for A {}
/// # struct B; impl Notification for B {}
/// let center = NotificationCenter::new();
/// let mut a = center.stream::<A>();
/// let _b = center.stream::<B>();
/// center.post(A);
/// drop(center);
/// assert!(a.try_recv().is_ok());
/// assert!(matches!(a.try_recv(), Err(TryRecvError::Closed)));
/// ```
#[derive(Clone)]
pub struct NotificationCenter {
    pub(crate) inner: Arc<CenterInner>,
}

impl Default for NotificationCenter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for NotificationCenter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationCenter")
            .field("types", &self.inner.types())
            .field("panic_policy", &self.inner.panic_policy)
            .finish()
    }
}

/// Configures a [`NotificationCenter`].
///
/// ```
/// use herald::{NotificationCenter, PanicPolicy};
///
/// let center = NotificationCenter::builder()
///     .panic_policy(PanicPolicy::Propagate)
///     .build();
/// # let _ = center;
/// ```
#[derive(Debug, Clone, Default)]
pub struct CenterBuilder {
    panic_policy: PanicPolicy,
    reader_fences: ReaderFences,
}

/// How posts order their read of the subscriber list against writers (see
/// [`CenterBuilder::reader_fences`]).
///
/// Both settings give the same behaviour; only the costs differ.
///
/// ```
/// # use herald::{Notification, NotificationCenter, ReaderFences};
/// # struct Ev; impl Notification for Ev {}
/// assert_eq!(ReaderFences::default(), ReaderFences::Asymmetric);
/// for fences in [ReaderFences::Asymmetric, ReaderFences::Always] {
///     let center = NotificationCenter::builder().reader_fences(fences).build();
///     let sub = center.observe(|_: &Ev| {});
///     assert_eq!(center.post(Ev).received, 1);
///     sub.unsubscribe();
///     assert_eq!(center.post(Ev).received, 0);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReaderFences {
    /// On Linux, posts skip their memory fence while nobody subscribes or unsubscribes, and a
    /// writer pays with one `membarrier(2)` per burst of writes, which briefly interrupts
    /// every running thread of the process. Elsewhere, the same as `Always`. The default.
    #[default]
    Asymmetric,
    /// Every post issues a fence (a few nanoseconds); writers never interrupt other threads.
    /// For processes with threads that must never be interrupted (audio, trading loops).
    Always,
}

impl CenterBuilder {
    /// What a panicking observer does (default: [`PanicPolicy::Isolate`]).
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter, PanicPolicy};
    /// # use std::panic::{AssertUnwindSafe, catch_unwind};
    /// # use std::sync::Arc;
    /// # use std::sync::atomic::{AtomicU32, Ordering};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::builder()
    ///     .panic_policy(PanicPolicy::Propagate)
    ///     .build();
    /// let later = Arc::new(AtomicU32::new(0));
    /// let l = later.clone();
    /// let _strict = center.observe(|e: &Ev| if e.0 == 0 { panic!("zero") });
    /// let _later = center.observe(move |_: &Ev| { l.fetch_add(1, Ordering::SeqCst); });
    /// assert!(catch_unwind(AssertUnwindSafe(|| center.post(Ev(0)))).is_err());
    /// assert_eq!(later.load(Ordering::SeqCst), 0); // the later observer missed that post
    /// assert_eq!(center.post(Ev(1)).received, 2); // the center works on
    /// ```
    pub fn panic_policy(mut self, policy: PanicPolicy) -> Self {
        self.panic_policy = policy;
        self
    }

    /// How posts are fenced against concurrent subscribe and unsubscribe (default:
    /// [`ReaderFences::Asymmetric`]). Both are correct; they trade a post's cost against
    /// interrupts of other threads when the subscriber list changes.
    ///
    /// ```
    /// use herald::{NotificationCenter, ReaderFences};
    ///
    /// let center = NotificationCenter::builder()
    ///     .reader_fences(ReaderFences::Always)
    ///     .build();
    /// # let _ = center;
    /// ```
    pub fn reader_fences(mut self, fences: ReaderFences) -> Self {
        self.reader_fences = fences;
        self
    }

    /// Builds the center.
    ///
    /// ```
    /// # use herald::{Notification, NotificationCenter};
    /// # struct Ev; impl Notification for Ev {}
    /// let a = NotificationCenter::builder().build();
    /// let b = NotificationCenter::builder().build();
    /// assert!(!a.same_center(&b)); // every build makes a new center
    /// let _sub = a.observe(|_: &Ev| {});
    /// assert_eq!(a.post(Ev).received, 1);
    /// assert_eq!(b.post(Ev).received, 0);
    /// ```
    pub fn build(self) -> NotificationCenter {
        NotificationCenter {
            inner: Arc::new(CenterInner {
                domain: Arc::new(Domain::new(self.reader_fences == ReaderFences::Asymmetric)),
                channels: Guarded::new(Registry::default(), TypeMap::new()),
                panic_policy: self.panic_policy,
            }),
        }
    }
}

impl NotificationCenter {
    /// A new, empty center.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// assert_eq!(center.post(Ev(1)).received, 0); // nobody observes yet
    /// ```
    pub fn new() -> Self {
        CenterBuilder::default().build()
    }

    /// Configures a new center.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::builder()
    ///     .panic_policy(herald::PanicPolicy::Isolate)
    ///     .build();
    /// let _sub = center.observe(|_: &Ev| {});
    /// assert_eq!(center.post(Ev(1)).received, 1);
    /// ```
    pub fn builder() -> CenterBuilder {
        CenterBuilder::default()
    }

    /// The process-wide default center, made on first use.
    ///
    /// ```
    /// use herald::NotificationCenter;
    /// let a = NotificationCenter::global();
    /// let b = NotificationCenter::global();
    /// assert!(a.same_center(b));
    /// ```
    pub fn global() -> &'static NotificationCenter {
        static GLOBAL: OnceLock<NotificationCenter> = OnceLock::new();
        GLOBAL.get_or_init(NotificationCenter::new)
    }

    /// Whether two handles are clones of the same center.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// assert!(center.same_center(&center.clone()));
    /// assert!(!center.same_center(&NotificationCenter::new()));
    /// ```
    pub fn same_center(&self, other: &NotificationCenter) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Posts a notification without a sender. Inline observers run before this returns;
    /// buffered subscribers get it in their buffers. Never blocks on a slow subscriber.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let _sub = center.observe(|e: &Ev| assert_eq!(e.0, 1));
    /// let report = center.post(Ev(1));
    /// assert_eq!(report.received, 1);
    /// ```
    #[inline(always)]
    pub fn post<N: Notification>(&self, notification: N) -> PostReport {
        self.inner.post(notification, None)
    }

    /// Posts a notification from `sender` (Apple's `object:`): observers filtered on that
    /// sender receive it, and so do observers without a sender filter.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let job = herald::SenderId::new();
    /// let _only_job = center.observer::<Ev>().sender(job).inline(|_| {});
    /// assert_eq!(center.post_from(job, Ev(1)).received, 1);
    /// assert_eq!(center.post(Ev(2)).received, 0);
    /// ```
    #[inline(always)]
    pub fn post_from<N: Notification>(&self, sender: SenderId, notification: N) -> PostReport {
        self.inner.post(notification, Some(sender))
    }

    /// Posts, then waits for room in every backpressure subscriber that was full (see
    /// [`Overflow::Backpressure`](crate::Overflow::Backpressure)). Other subscribers are
    /// served as by [`post`](Self::post).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let mut slow = center
    ///     .observer::<Ev>()
    ///     .policy(herald::Overflow::Backpressure { capacity: 1 })
    ///     .stream();
    /// center.post_async(Ev(1)).await;
    /// let waiting = tokio::spawn({ let c = center.clone(); async move { c.post_async(Ev(2)).await } });
    /// tokio::task::yield_now().await;
    /// assert_eq!(slow.recv().await.unwrap().0, 1); // makes room
    /// assert_eq!(waiting.await.unwrap().received, 1);
    /// assert_eq!(slow.recv().await.unwrap().0, 2);
    /// # }
    /// ```
    pub async fn post_async<N: Notification>(&self, notification: N) -> PostReport {
        self.poster::<N>().post_async(notification).await
    }

    /// The poster of `N`: posts through it skip the per-post type lookup.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let ev = center.poster::<Ev>();
    /// let _sub = center.observe(|_: &Ev| {});
    /// assert_eq!(ev.post(Ev(1)).received, 1);
    /// ```
    pub fn poster<N: Notification>(&self) -> Poster<N> {
        Poster {
            core: self.inner.core::<N>(),
            center: self.clone(),
        }
    }

    /// The counters of `N`.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let _sub = center.observe(|_: &Ev| {});
    /// center.post(Ev(1));
    /// let stats = center.stats::<Ev>();
    /// assert_eq!((stats.posted, stats.delivered, stats.observers), (1, 1, 1));
    /// ```
    pub fn stats<N: Notification>(&self) -> Stats {
        match self.inner.find::<N>() {
            Some(core) => core.stats(),
            None => Stats::default(),
        }
    }

    /// Turns on retention of `N`'s last value (overall and per sender) for
    /// [`replay_last`](crate::ObserverBuilder::replay_last) subscribers. Costs one allocation and one
    /// short lock per post of `N` from then on.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// center.retain_last::<Ev>();
    /// center.post(Ev(4));
    /// let late = center.observer::<Ev>().replay_last().stream();
    /// assert_eq!(late.len(), 1);
    /// ```
    pub fn retain_last<N: Notification>(&self) {
        self.inner.core::<N>().retain_last();
    }

    /// Forgets the retained last value `sender` posted of `N`.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let job = herald::SenderId::new();
    /// center.retain_last::<Ev>();
    /// center.post_from(job, Ev(4));
    /// center.forget_last::<Ev>(job);
    /// let late = center.observer::<Ev>().sender(job).replay_last().stream();
    /// assert!(late.is_empty());
    /// ```
    pub fn forget_last<N: Notification>(&self, sender: SenderId) {
        if let Some(core) = self.inner.find::<N>() {
            core.forget_sender(sender);
        }
    }
}

/// A poster of one notification type: posts through it skip the per-post type lookup.
///
/// Made by [`NotificationCenter::poster`]. It only posts (and reads the type's counters);
/// subscriptions are made on the center. Cheap to clone, `Send + Sync`.
///
/// ```
/// use herald::{NotificationCenter, Notification};
///
/// struct Frame(u64);
/// impl Notification for Frame {}
///
/// let center = NotificationCenter::new();
/// let frames = center.poster::<Frame>();
/// let _render = center.observe(|f: &Frame| assert!(f.0 < 100));
/// for i in 0..100 {
///     frames.post(Frame(i));
/// }
/// assert_eq!(frames.stats().delivered, 100);
/// ```
pub struct Poster<N: Notification> {
    core: Arc<Core<N>>,
    center: NotificationCenter,
}

impl<N: Notification> Clone for Poster<N> {
    fn clone(&self) -> Self {
        Poster {
            core: self.core.clone(),
            center: self.center.clone(),
        }
    }
}

impl<N: Notification> fmt::Debug for Poster<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poster")
            .field("notification", &N::name())
            .finish_non_exhaustive()
    }
}

impl<N: Notification> Poster<N> {
    /// Posts without a sender (see [`NotificationCenter::post`]).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let ev = center.poster::<Ev>();
    /// let _sub = center.observe(|_: &Ev| {});
    /// assert_eq!(ev.post(Ev(1)).received, 1);
    /// ```
    #[inline(always)]
    pub fn post(&self, notification: N) -> PostReport {
        // Always inlined, as are the other posts: returned from a call, the report goes
        // through memory (the Rust ABI returns it by pointer), written field by field, and a
        // caller that keeps it whole reads it back in one load, which waits for the stores to
        // retire (measured under criterion: a one-observer post 19.5 ns called, 16.5 inlined).
        let section = self.core.domain().read();
        self.core.post(&section, notification, None)
    }

    /// Posts from `sender` (see [`NotificationCenter::post_from`]).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let ev = center.poster::<Ev>();
    /// let me = herald::SenderId::new();
    /// let _mine = center.observer::<Ev>().sender(me).inline(|_| {});
    /// assert_eq!(ev.post_from(me, Ev(1)).received, 1);
    /// ```
    #[inline(always)]
    pub fn post_from(&self, sender: SenderId, notification: N) -> PostReport {
        let section = self.core.domain().read();
        self.core.post(&section, notification, Some(sender))
    }

    /// Posts and waits for room in full backpressure subscribers (see
    /// [`NotificationCenter::post_async`]).
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let ev = center.poster::<Ev>();
    /// let mut s = center.stream::<Ev>();
    /// assert_eq!(ev.post_async(Ev(1)).await.received, 1);
    /// assert_eq!(s.recv().await.unwrap().0, 1);
    /// # }
    /// ```
    pub async fn post_async(&self, notification: N) -> PostReport {
        self.post_async_inner(notification, None).await
    }

    /// [`post_async`](Self::post_async) from `sender`.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let center = NotificationCenter::new();
    /// let ev = center.poster::<Ev>();
    /// let me = herald::SenderId::new();
    /// let mut mine = center.observer::<Ev>().sender(me).stream();
    /// ev.post_async_from(me, Ev(1)).await;
    /// assert_eq!(mine.recv().await.unwrap().0, 1);
    /// # }
    /// ```
    pub async fn post_async_from(&self, sender: SenderId, notification: N) -> PostReport {
        self.post_async_inner(notification, Some(sender)).await
    }

    async fn post_async_inner(&self, notification: N, sender: Option<SenderId>) -> PostReport {
        let mut waiting = Waiting::default();
        let mut report = self.core.post_waiting(notification, sender, &mut waiting);
        let Waiting { targets, value } = waiting;
        let Some(value) = value else {
            return report;
        };
        // If this future is dropped while it waits, the values not yet handed over are lost:
        // count them (contract 5).
        let mut pending = PendingPushes {
            core: &self.core,
            targets,
            served: 0,
        };
        while let Some(target) = pending.targets.get(pending.served).cloned() {
            if !target.push_wait(&value).await {
                // The subscriber went away while we waited: not received after all.
                report.received = report.received.saturating_sub(1);
            }
            pending.served += 1;
        }
        if report.is_dead() {
            // Every subscriber it waited for left: it reached nobody after all (contract 7).
            self.core.dead(sender);
        }
        report
    }

    /// This type's counters.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// let ev = center.poster::<Ev>();
    /// ev.post(Ev(1));
    /// assert_eq!(ev.stats().posted, 1);
    /// assert_eq!(ev.stats().dead, 1); // nobody observed it
    /// ```
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// The center this poster posts into.
    ///
    /// ```
    /// # use herald::{NotificationCenter, Notification};
    /// # struct Ev(u32); impl Notification for Ev {}
    /// let center = NotificationCenter::new();
    /// assert!(center.poster::<Ev>().center().same_center(&center));
    /// ```
    pub fn center(&self) -> &NotificationCenter {
        &self.center
    }
}

/// The backpressure subscribers a `post_async` still has to serve.
struct PendingPushes<'a, N: Notification> {
    core: &'a Core<N>,
    targets: Vec<Arc<dyn crate::hub::engine::WaitForRoom<N>>>,
    served: usize,
}

impl<N: Notification> Drop for PendingPushes<'_, N> {
    fn drop(&mut self) {
        let lost = &self.targets[self.served..];
        for target in lost {
            target.count_lost();
        }
        if !lost.is_empty() {
            self.core.count_dropped(lost.len() as u64);
        }
    }
}
