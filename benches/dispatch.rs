//! Dispatch benchmarks: herald against its peers, in one process, on the same workload.
//!
//! `cargo bench --bench dispatch` runs every scenario, then writes
//! `target/herald-bench/dispatch.json` (`[{scenario, n, implementation, median_ns}]`) and prints
//! a table of medians and ratios. `median_ns` is per post for `inline` and `churn`, and per
//! delivered item for `stream`.
//!
//! Workloads:
//! - `inline/1->N`: one poster, N observers; each observer adds the payload to its own atomic
//!   counter (the smallest observer that does observable work); every implementation updates
//!   the same N counters. Peers: `floor` (a
//!   `Vec<Box<dyn Fn>>` called in a loop: no bus at all), `rwlock-bus` (a `std` `RwLock` around
//!   that vector) and `arc-swap-bus` (an `arc_swap::ArcSwap` snapshot of it: copy-on-write like
//!   herald, without `unsafe` of its own). The observers of all of them are built in one loop,
//!   one of each per step, so that no implementation gets its closures back to back in memory
//!   while the others' are spread out (see `bench_inline`).
//! - `stream/1->N`: one poster thread, N receiver tasks on a tokio runtime; the poster sends in
//!   chunks of 512 and waits for every receiver to drain a chunk (no implementation loses items).
//!   `herald` is the default stream (drop-oldest: the shared ring); `herald-private` the same
//!   with a filter that passes everything, which gives each stream a private buffer;
//!   `safe-ring` is herald's ring protocol with `arc-swap` slots instead of `unsafe` tickets
//!   (the safe variant herald's `unsafe` must beat);
//!   `tokio-broadcast-arc` is `tokio::sync::broadcast` carrying `Arc<Tick>`: one allocation per
//!   post, freed by the last receiver on another thread, as herald's posts (which hand out
//!   `Arc<N>`) make; the gap between it and `tokio-broadcast` is the allocator's share.
//! - `churn`: `inline/1->16` while another thread subscribes and unsubscribes in a loop, for
//!   herald and for the two buses people write instead (an `RwLock<Vec<..>>` and an `arc-swap`
//!   snapshot), each with the same churn: `*-quiet` without the churning thread, `*-churn`
//!   with it. The number of subscribe/unsubscribe cycles each churner made is printed.
//! - memory: bytes per subscription and per buffered item, from a counting allocator.

// The counting allocator implements `GlobalAlloc`, which is an unsafe trait.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use criterion::{BenchmarkId, Criterion};
use herald::{Notification, NotificationCenter, Overflow};

// ---------------------------------------------------------------- counting allocator

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

// ---------------------------------------------------------------- the workload

#[derive(Debug, Clone)]
struct Tick(u64);
impl Notification for Tick {}

const INLINE_NS: [usize; 5] = [1, 4, 16, 64, 256];
const STREAM_NS: [usize; 4] = [1, 4, 16, 64];
const CHUNK: u64 = 512;

fn counters(n: usize) -> Vec<Arc<AtomicU64>> {
    (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect()
}

type Observer = Box<dyn Fn(&Tick) + Send + Sync>;

/// The floor: what a hand-written loop over boxed closures costs.
struct Floor(Vec<Observer>);

/// The naive bus people write first: a lock around a vector of observers.
#[derive(Default)]
struct RwLockBus(RwLock<Vec<Observer>>);

impl RwLockBus {
    fn post(&self, t: &Tick) {
        let observers = match self.0.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for o in observers.iter() {
            o(t);
        }
    }

    fn subscribe(&self, o: Observer) -> usize {
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.push(o);
        g.len() - 1
    }

    fn unsubscribe(&self, at: usize) {
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if at < g.len() {
            drop(g.remove(at));
        }
    }
}

type SharedObserver = Arc<dyn Fn(&Tick) + Send + Sync>;

/// The copy-on-write bus people write with `arc-swap`: posts load the current snapshot,
/// writers clone it, change the copy and store it.
struct ArcSwapBus(ArcSwap<Vec<SharedObserver>>);

impl Default for ArcSwapBus {
    fn default() -> Self {
        ArcSwapBus(ArcSwap::from_pointee(Vec::new()))
    }
}

impl ArcSwapBus {
    fn post(&self, t: &Tick) {
        let observers = self.0.load();
        for o in observers.iter() {
            o(t);
        }
    }

    fn subscribe(&self, o: SharedObserver) {
        self.0.rcu(|v| {
            let mut v = Vec::clone(v);
            v.push(o.clone());
            v
        });
    }

    fn unsubscribe(&self, o: &SharedObserver) {
        self.0.rcu(|v| {
            let mut v = Vec::clone(v);
            v.retain(|x| !Arc::ptr_eq(x, o));
            v
        });
    }
}

/// The observer every implementation runs: adds the payload to its counter.
fn add_to(c: Arc<AtomicU64>) -> impl Fn(&Tick) + Send + Sync + 'static {
    move |t: &Tick| {
        c.fetch_add(t.0, Ordering::Relaxed);
    }
}

fn bench_inline(c: &mut Criterion) {
    let mut group = c.benchmark_group("inline");
    for &n in &INLINE_NS {
        // Every implementation updates the same counters, so they all touch the same memory
        // and differ only in how they reach the observers (separate counters per
        // implementation made the result depend on where the allocator put them: the floor
        // measured slower than the RwLock bus at N=256).
        let shared = counters(n);
        // One observer for every implementation per step, as an application subscribes over
        // time: each implementation's observers lie among the others' allocations. Built one
        // implementation after the other instead, the peers' closures lay back to back while
        // herald's were separated by the snapshot arrays its subscriptions copy, and at N=256
        // that layout alone decided the comparison: the floor itself measured 1.5x slower
        // with its boxes spread out that way (every call after an observer's atomic add waits
        // for the next closure's cache line).
        let center = NotificationCenter::new();
        let mut subs = Vec::with_capacity(n);
        let mut floor = Floor(Vec::with_capacity(n));
        let bus = RwLockBus::default();
        let swap = ArcSwapBus::default();
        for c in &shared {
            subs.push(center.observe(add_to(c.clone())));
            floor.0.push(Box::new(add_to(c.clone())) as Observer);
            if let Ok(mut g) = bus.0.write() {
                g.push(Box::new(add_to(c.clone())));
            }
            swap.subscribe(Arc::new(add_to(c.clone())));
        }
        let handle = center.poster::<Tick>();
        group.bench_with_input(BenchmarkId::new("herald-handle", n), &n, |b, _| {
            b.iter(|| handle.post(Tick(black_box(1))))
        });
        group.bench_with_input(BenchmarkId::new("herald-post", n), &n, |b, _| {
            b.iter(|| center.post(Tick(black_box(1))))
        });
        // The same post with a family wildcard observing other types: it must cost nothing.
        let wildcard = center
            .observer::<herald::Wildcard>()
            .family("other.")
            .inline(|any| {
                black_box(any.name());
            });
        group.bench_with_input(BenchmarkId::new("herald-handle+wildcard", n), &n, |b, _| {
            b.iter(|| handle.post(Tick(black_box(1))))
        });
        drop(wildcard);
        group.bench_with_input(BenchmarkId::new("floor", n), &n, |b, _| {
            b.iter(|| {
                let t = Tick(black_box(1));
                for o in floor.0.iter() {
                    o(&t);
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("rwlock-bus", n), &n, |b, _| {
            b.iter(|| bus.post(&Tick(black_box(1))))
        });
        group.bench_with_input(BenchmarkId::new("arc-swap-bus", n), &n, |b, _| {
            b.iter(|| swap.post(&Tick(black_box(1))))
        });
        drop(subs);
    }
    group.finish();
}

// ---------------------------------------------------------------- streams

/// Progress of every receiver; the poster waits on the slowest.
struct Progress(Vec<AtomicU64>);

impl Progress {
    fn new(n: usize) -> Arc<Self> {
        Arc::new(Progress((0..n).map(|_| AtomicU64::new(0)).collect()))
    }
    fn wait_all(&self, at_least: u64) {
        while self.0.iter().any(|p| p.load(Ordering::Acquire) < at_least) {
            std::thread::yield_now();
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `iters` items through N receivers; returns the elapsed time.
fn stream_run<S>(
    rt: &tokio::runtime::Runtime,
    n: usize,
    iters: u64,
    spawn_receivers: impl FnOnce(
        &tokio::runtime::Runtime,
        Arc<Progress>,
        u64,
    ) -> Vec<tokio::task::JoinHandle<()>>,
    mut send: S,
) -> Duration
where
    S: FnMut(u64),
{
    let progress = Progress::new(n);
    let tasks = spawn_receivers(rt, progress.clone(), iters);
    let start = Instant::now();
    let mut sent = 0;
    while sent < iters {
        let chunk = CHUNK.min(iters - sent);
        for i in 0..chunk {
            send(sent + i);
        }
        sent += chunk;
        progress.wait_all(sent);
    }
    let elapsed = start.elapsed();
    for t in tasks {
        let _ = rt.block_on(t);
    }
    elapsed
}

/// One task per receiver, each receiving `iters` items and reporting its progress.
macro_rules! spawn_receivers {
    ($rt:expr, $progress:expr, $iters:expr, $rxs:expr, |$rx:ident| $recv:expr) => {
        $rxs.into_iter()
            .enumerate()
            .map(|(i, rx)| {
                #[allow(unused_mut)]
                let mut $rx = rx;
                let progress = $progress.clone();
                let iters = $iters;
                $rt.spawn(async move {
                    let mut got = 0;
                    while got < iters {
                        if let Ok(v) = $recv {
                            black_box(v.0);
                            got += 1;
                            progress.0[i].store(got, Ordering::Release);
                        }
                    }
                })
            })
            .collect()
    };
}

/// herald's ring protocol without `unsafe`: per-subscriber cursors claimed by CAS, one lock
/// per post, parked receivers woken through the same fence handshake, but each slot an
/// `arc_swap::ArcSwapOption` that the receiver clones from, instead of herald's tickets (strong
/// counts handed out by the poster). The peer that shows what herald's `unsafe` buys. (It also
/// keeps each value alive until its slot is overwritten, which herald must not.)
mod safe_ring {
    use std::future::poll_fn;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
    use std::sync::{Arc, Mutex};
    use std::task::{Poll, Waker};

    use arc_swap::ArcSwapOption;

    pub(crate) struct Ring<T> {
        slots: Box<[ArcSwapOption<T>]>,
        mask: u64,
        capacity: u64,
        tail: AtomicU64,
        parked: AtomicUsize,
        members: Mutex<Vec<Arc<Cursor>>>,
    }

    pub(crate) struct Cursor {
        next: AtomicU64,
        parked: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    pub(crate) struct Receiver<T> {
        ring: Arc<Ring<T>>,
        cursor: Arc<Cursor>,
        next: u64,
        avail: u64,
    }

    impl<T> Ring<T> {
        pub(crate) fn new(capacity: usize) -> Arc<Self> {
            let len = capacity.next_power_of_two();
            Arc::new(Ring {
                slots: (0..len).map(|_| ArcSwapOption::empty()).collect(),
                mask: len as u64 - 1,
                capacity: capacity as u64,
                tail: AtomicU64::new(0),
                parked: AtomicUsize::new(0),
                members: Mutex::new(Vec::new()),
            })
        }

        pub(crate) fn subscribe(self: &Arc<Self>) -> Receiver<T> {
            let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
            let tail = self.tail.load(Ordering::Relaxed);
            let cursor = Arc::new(Cursor {
                next: AtomicU64::new(tail),
                parked: AtomicBool::new(false),
                waker: Mutex::new(None),
            });
            members.push(cursor.clone());
            Receiver {
                ring: self.clone(),
                cursor,
                next: tail,
                avail: tail,
            }
        }

        pub(crate) fn send(&self, value: T) {
            let value = Arc::new(value);
            let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
            let p = self.tail.load(Ordering::Relaxed);
            if let Some(oldest) = p.checked_sub(self.capacity) {
                for m in members.iter() {
                    let _ = m.next.compare_exchange(
                        oldest,
                        oldest + 1,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                }
            }
            self.slots[(p & self.mask) as usize].store(Some(value));
            self.tail.store(p + 1, Ordering::Release);
            fence(Ordering::SeqCst);
            if self.parked.load(Ordering::Acquire) != 0 {
                for m in members.iter() {
                    if m.parked.swap(false, Ordering::AcqRel) {
                        self.parked.fetch_sub(1, Ordering::AcqRel);
                        let w = m.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
                        if let Some(w) = w {
                            w.wake();
                        }
                    }
                }
            }
        }
    }

    impl<T> Receiver<T> {
        pub(crate) async fn recv(&mut self) -> Result<Arc<T>, u64> {
            poll_fn(|cx| {
                loop {
                    if self.next < self.avail {
                        let q = self.next;
                        let v = self.ring.slots[(q & self.ring.mask) as usize].load_full();
                        match self.cursor.next.compare_exchange(
                            q,
                            q + 1,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => {
                                self.next = q + 1;
                                if let Some(v) = v {
                                    return Poll::Ready(Ok(v));
                                }
                            }
                            Err(now) => {
                                self.next = now;
                                return Poll::Ready(Err(now - q));
                            }
                        }
                        continue;
                    }
                    self.avail = self.ring.tail.load(Ordering::Acquire);
                    if self.next < self.avail {
                        continue;
                    }
                    *self.cursor.waker.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(cx.waker().clone());
                    if !self.cursor.parked.swap(true, Ordering::AcqRel) {
                        self.ring.parked.fetch_add(1, Ordering::AcqRel);
                    }
                    fence(Ordering::SeqCst);
                    self.avail = self.ring.tail.load(Ordering::Acquire);
                    if self.next < self.avail {
                        continue;
                    }
                    return Poll::Pending;
                }
            })
            .await
        }
    }
}

fn bench_stream(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("stream");
    group.sample_size(20);
    for &n in &STREAM_NS {
        for (name, private) in [("herald", false), ("herald-private", true)] {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    let center = NotificationCenter::new();
                    let handle = center.poster::<Tick>();
                    let streams: Vec<_> = (0..n)
                        .map(|_| {
                            let builder = center
                                .observer::<Tick>()
                                .policy(Overflow::DropOldest { capacity: 4096 });
                            if private {
                                builder.filter(|_| true).stream()
                            } else {
                                builder.stream()
                            }
                        })
                        .collect();
                    stream_run(
                        &rt,
                        n,
                        iters,
                        move |rt, progress, iters| {
                            spawn_receivers!(rt, progress, iters, streams, |s| s.recv().await)
                        },
                        |i| {
                            handle.post(Tick(i));
                        },
                    )
                })
            });
        }

        group.bench_with_input(BenchmarkId::new("safe-ring", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let ring = safe_ring::Ring::<Tick>::new(4096);
                let rxs: Vec<_> = (0..n).map(|_| ring.subscribe()).collect();
                stream_run(
                    &rt,
                    n,
                    iters,
                    move |rt, progress, iters| {
                        spawn_receivers!(rt, progress, iters, rxs, |rx| rx.recv().await)
                    },
                    |i| ring.send(Tick(i)),
                )
            })
        });

        group.bench_with_input(BenchmarkId::new("tokio-broadcast", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let (tx, _) = tokio::sync::broadcast::channel::<Tick>(4096);
                let rxs: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
                stream_run(
                    &rt,
                    n,
                    iters,
                    move |rt, progress, iters| {
                        spawn_receivers!(rt, progress, iters, rxs, |rx| rx.recv().await)
                    },
                    |i| {
                        let _ = tx.send(Tick(i));
                    },
                )
            })
        });

        // The same channel carrying `Arc<Tick>`: one allocation per post, freed by the last
        // receiver, as herald's posts (which hand out `Arc<N>`) do.
        group.bench_with_input(BenchmarkId::new("tokio-broadcast-arc", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let (tx, _) = tokio::sync::broadcast::channel::<Arc<Tick>>(4096);
                let rxs: Vec<_> = (0..n).map(|_| tx.subscribe()).collect();
                stream_run(
                    &rt,
                    n,
                    iters,
                    move |rt, progress, iters| {
                        spawn_receivers!(rt, progress, iters, rxs, |rx| rx.recv().await)
                    },
                    |i| {
                        let _ = tx.send(Arc::new(Tick(i)));
                    },
                )
            })
        });

        group.bench_with_input(BenchmarkId::new("async-broadcast", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let (tx, rx) = async_broadcast::broadcast::<Tick>(4096);
                let rxs: Vec<_> = (0..n).map(|_| rx.clone()).collect();
                drop(rx);
                stream_run(
                    &rt,
                    n,
                    iters,
                    move |rt, progress, iters| {
                        spawn_receivers!(rt, progress, iters, rxs, |rx| rx.recv().await)
                    },
                    |i| {
                        let _ = tx.try_broadcast(Tick(i));
                    },
                )
            })
        });

        group.bench_with_input(BenchmarkId::new("flume-fanout", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let (txs, rxs): (Vec<_>, Vec<_>) =
                    (0..n).map(|_| flume::bounded::<Tick>(4096)).unzip();
                stream_run(
                    &rt,
                    n,
                    iters,
                    move |rt, progress, iters| {
                        spawn_receivers!(rt, progress, iters, rxs, |rx| rx.recv_async().await)
                    },
                    |i| {
                        for tx in &txs {
                            let _ = tx.try_send(Tick(i));
                        }
                    },
                )
            })
        });
    }
    group.finish();
}

// ---------------------------------------------------------------- churn

/// Runs `post` under criterion as `name`, while `churn` (if any) runs on another thread until
/// the measurement ends; prints how many cycles the churner made.
fn churn_case(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    post: impl Fn(),
    churn: Option<Box<dyn FnMut() + Send>>,
) {
    let n = CHURN_N;
    let stop = Arc::new(AtomicBool::new(false));
    let churner = churn.map(|mut cycle| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut cycles = 0u64;
            while !stop.load(Ordering::Relaxed) {
                cycle();
                cycles += 1;
            }
            cycles
        })
    });
    group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| b.iter(&post));
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = churner {
        let cycles = t.join().unwrap_or(0);
        println!("churn: {name}: {cycles} subscribe/unsubscribe cycles during the run");
    }
}

const CHURN_N: usize = 16;

fn bench_churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("churn");
    let n = CHURN_N;
    for churning in [false, true] {
        let suffix = if churning { "churn" } else { "quiet" };

        let center = NotificationCenter::new();
        let _subs: Vec<_> = counters(n)
            .into_iter()
            .map(|c| {
                center.observe(move |t: &Tick| {
                    c.fetch_add(t.0, Ordering::Relaxed);
                })
            })
            .collect();
        let churner = center.clone();
        churn_case(
            &mut group,
            &format!("herald-{suffix}"),
            || {
                center.post(Tick(black_box(1)));
            },
            churning.then(|| {
                Box::new(move || {
                    let s = churner.observe(|t: &Tick| {
                        black_box(t.0);
                    });
                    drop(s);
                }) as Box<dyn FnMut() + Send>
            }),
        );

        let bus = Arc::new(RwLockBus::default());
        for c in counters(n) {
            bus.subscribe(Box::new(move |t: &Tick| {
                c.fetch_add(t.0, Ordering::Relaxed);
            }));
        }
        let churner = bus.clone();
        churn_case(
            &mut group,
            &format!("rwlock-bus-{suffix}"),
            || bus.post(&Tick(black_box(1))),
            churning.then(|| {
                Box::new(move || {
                    let at = churner.subscribe(Box::new(|t: &Tick| {
                        black_box(t.0);
                    }));
                    churner.unsubscribe(at);
                }) as Box<dyn FnMut() + Send>
            }),
        );

        let swap = Arc::new(ArcSwapBus::default());
        for c in counters(n) {
            swap.subscribe(Arc::new(move |t: &Tick| {
                c.fetch_add(t.0, Ordering::Relaxed);
            }));
        }
        let churner = swap.clone();
        churn_case(
            &mut group,
            &format!("arc-swap-{suffix}"),
            || swap.post(&Tick(black_box(1))),
            churning.then(|| {
                Box::new(move || {
                    let o: SharedObserver = Arc::new(|t: &Tick| {
                        black_box(t.0);
                    });
                    churner.subscribe(o.clone());
                    churner.unsubscribe(&o);
                }) as Box<dyn FnMut() + Send>
            }),
        );
    }
    group.finish();
}

// ---------------------------------------------------------------- memory

fn measure_memory() -> Vec<(String, f64)> {
    const K: usize = 10_000;
    let center = NotificationCenter::new();
    // Make the channel first so its own allocation is not counted.
    let channel = center.poster::<Tick>();
    let mut out = Vec::new();

    LIVE_BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let subs: Vec<_> = (0..K)
        .map(|_| {
            center.observe(|t: &Tick| {
                black_box(t.0);
            })
        })
        .collect();
    COUNTING.store(false, Ordering::SeqCst);
    // Subtract the Vec holding the guards: that is the caller's, not herald's.
    let per_sub = (LIVE_BYTES.load(Ordering::SeqCst) as f64
        - (subs.capacity() * std::mem::size_of::<herald::Subscription>()) as f64)
        / K as f64;
    out.push((
        "bytes per inline subscription (with 10k subscribed)".to_owned(),
        per_sub,
    ));
    drop(subs);

    let mut stream = center
        .observer::<Tick>()
        .policy(Overflow::DropOldest { capacity: 2 * K })
        .stream();
    // Warm the buffer's storage so growth is counted fairly, then measure.
    for i in 0..K as u64 {
        channel.post(Tick(i));
    }
    while stream.try_recv().is_ok() {}
    LIVE_BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for i in 0..K as u64 {
        channel.post(Tick(i));
    }
    COUNTING.store(false, Ordering::SeqCst);
    out.push((
        "bytes per buffered item (one stream)".to_owned(),
        LIVE_BYTES.load(Ordering::SeqCst) as f64 / K as f64,
    ));
    drop(stream);

    // Everything a full stream costs, its storage included: subscribe, then fill it.
    for (label, private) in [
        (
            "bytes per buffered item, storage included (one full stream, shared ring)",
            false,
        ),
        (
            "bytes per buffered item, storage included (one full stream, private buffer)",
            true,
        ),
    ] {
        let center = NotificationCenter::new();
        let channel = center.poster::<Tick>();
        LIVE_BYTES.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
        let builder = center
            .observer::<Tick>()
            .policy(Overflow::DropOldest { capacity: K });
        let stream = if private {
            builder.filter(|_| true).stream()
        } else {
            builder.stream()
        };
        for i in 0..K as u64 {
            channel.post(Tick(i));
        }
        COUNTING.store(false, Ordering::SeqCst);
        out.push((
            label.to_owned(),
            LIVE_BYTES.load(Ordering::SeqCst) as f64 / K as f64,
        ));
        drop(stream);
    }

    // Sixteen streams of one capacity share a ring and each value.
    let center = NotificationCenter::new();
    let channel = center.poster::<Tick>();
    LIVE_BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let streams: Vec<_> = (0..16)
        .map(|_| {
            center
                .observer::<Tick>()
                .policy(Overflow::DropOldest { capacity: K })
                .stream()
        })
        .collect();
    for i in 0..K as u64 {
        channel.post(Tick(i));
    }
    COUNTING.store(false, Ordering::SeqCst);
    out.push((
        "bytes per buffered item, storage included (16 full streams, shared ring)".to_owned(),
        (LIVE_BYTES.load(Ordering::SeqCst)
            - streams.capacity() * std::mem::size_of::<herald::NotificationStream<Tick>>())
            as f64
            / (16 * K) as f64,
    ));
    drop(streams);
    out
}

// ---------------------------------------------------------------- report

struct Row {
    scenario: String,
    n: usize,
    implementation: String,
    median_ns: f64,
}

/// Where cargo puts its output: `CARGO_TARGET_DIR`, or `target/` beside `Cargo.toml`.
fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = std::path::PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
            }
        }
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

fn read_median(group: &str, implementation: &str, n: usize) -> Option<f64> {
    let path = target_dir()
        .join("criterion")
        .join(group)
        .join(implementation)
        .join(n.to_string())
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let at = text.find("\"median\"")?;
    let rest = &text[at..];
    let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let num: String = rest[p..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    num.parse().ok()
}

fn collect() -> Vec<Row> {
    let mut rows = Vec::new();
    let mut push = |scenario: &str, group: &str, n: usize, implementation: &str, per: f64| {
        if let Some(m) = read_median(group, implementation, n) {
            rows.push(Row {
                scenario: scenario.to_owned(),
                n,
                implementation: implementation.to_owned(),
                median_ns: m / per,
            });
        }
    };
    for &n in &INLINE_NS {
        for i in [
            "herald-handle",
            "herald-post",
            "herald-handle+wildcard",
            "floor",
            "rwlock-bus",
            "arc-swap-bus",
        ] {
            push("inline", "inline", n, i, 1.0);
        }
    }
    for &n in &STREAM_NS {
        for i in [
            "herald",
            "herald-private",
            "safe-ring",
            "tokio-broadcast",
            "tokio-broadcast-arc",
            "async-broadcast",
            "flume-fanout",
        ] {
            push("stream", "stream", n, i, n as f64);
        }
    }
    for i in [
        "herald-quiet",
        "herald-churn",
        "rwlock-bus-quiet",
        "rwlock-bus-churn",
        "arc-swap-quiet",
        "arc-swap-churn",
    ] {
        push("churn", "churn", CHURN_N, i, 1.0);
    }
    rows
}

fn median_of(rows: &[Row], scenario: &str, n: usize, implementation: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.scenario == scenario && r.n == n && r.implementation == implementation)
        .map(|r| r.median_ns)
}

fn report(rows: &[Row], memory: &[(String, f64)]) {
    let dir = target_dir().join("herald-bench");
    let _ = std::fs::create_dir_all(&dir);
    let json: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "  {{\"scenario\": \"{}\", \"n\": {}, \"implementation\": \"{}\", \"median_ns\": {:.3}}}",
                r.scenario, r.n, r.implementation, r.median_ns
            )
        })
        .collect();
    let _ = std::fs::write(
        dir.join("dispatch.json"),
        format!("[\n{}\n]\n", json.join(",\n")),
    );

    println!("\n== herald dispatch: medians (ns per post / per delivered item) and ratios ==");
    println!(
        "{:<8} {:>4} {:<16} {:>12} {:>10}",
        "scenario", "n", "implementation", "median ns", "ratio"
    );
    for r in rows {
        let base = match r.scenario.as_str() {
            "inline" => median_of(rows, "inline", r.n, "floor"),
            "stream" => median_of(rows, "stream", r.n, "herald"),
            _ => median_of(rows, "churn", CHURN_N, "herald-quiet"),
        };
        let ratio = base.map(|b| r.median_ns / b).unwrap_or(f64::NAN);
        let against = match r.scenario.as_str() {
            "inline" => "x floor",
            "stream" => "x herald",
            _ => "x quiet",
        };
        println!(
            "{:<8} {:>4} {:<16} {:>12.2} {:>7.2} {}",
            r.scenario, r.n, r.implementation, r.median_ns, ratio, against
        );
    }
    println!("\n== targets (issue 9) ==");
    let check = |label: &str, value: Option<f64>, limit: f64, at_most: bool| {
        if let Some(v) = value {
            let ok = if at_most { v <= limit } else { v >= limit };
            println!(
                "{:<62} {:>6.2} (target {} {:.2}) {}",
                label,
                v,
                if at_most { "<=" } else { ">=" },
                limit,
                if ok { "met" } else { "MISSED" }
            );
        }
    };
    let ratio = |s: &str, n: usize, a: &str, b: &str| {
        Some(median_of(rows, s, n, a)? / median_of(rows, s, n, b)?)
    };
    for &n in &INLINE_NS {
        check(
            &format!("inline N={n}: herald-handle / rwlock-bus"),
            ratio("inline", n, "herald-handle", "rwlock-bus"),
            1.0,
            true,
        );
    }
    check(
        "inline N=1: herald-handle / floor",
        ratio("inline", 1, "herald-handle", "floor"),
        2.0,
        true,
    );
    for n in [16, 64, 256] {
        check(
            &format!("inline N={n}: herald-handle / floor"),
            ratio("inline", n, "herald-handle", "floor"),
            1.1,
            true,
        );
    }
    for &n in &INLINE_NS {
        check(
            &format!("inline N={n}: herald-post / herald-handle"),
            ratio("inline", n, "herald-post", "herald-handle"),
            1.25,
            true,
        );
    }
    for &n in &STREAM_NS {
        check(
            &format!("stream N={n}: herald / tokio-broadcast (ns per item)"),
            ratio("stream", n, "herald", "tokio-broadcast"),
            1.0,
            true,
        );
    }
    check(
        "stream N=16: herald throughput / tokio-broadcast",
        ratio("stream", 16, "tokio-broadcast", "herald"),
        1.5,
        false,
    );
    check(
        "churn: herald-churn / herald-quiet",
        ratio("churn", CHURN_N, "herald-churn", "herald-quiet"),
        1.3,
        true,
    );
    let best_peer = ["rwlock-bus-churn", "arc-swap-churn"]
        .iter()
        .filter_map(|p| median_of(rows, "churn", CHURN_N, p))
        .reduce(f64::min);
    check(
        "churn: herald-churn / best peer under churn",
        median_of(rows, "churn", CHURN_N, "herald-churn")
            .zip(best_peer)
            .map(|(h, p)| h / p),
        1.0,
        true,
    );
    println!("\n== memory ==");
    for (label, bytes) in memory {
        println!("{label:<76} {bytes:>8.1} bytes");
    }
    let memory_json: Vec<String> = memory
        .iter()
        .map(|(label, bytes)| format!("  {{\"what\": \"{label}\", \"bytes\": {bytes:.1}}}"))
        .collect();
    let _ = std::fs::write(
        dir.join("dispatch-memory.json"),
        format!("[\n{}\n]\n", memory_json.join(",\n")),
    );
    println!("\nwrote {}", dir.join("dispatch.json").display());
}

/// When and where the run happened, for `benches/results/dispatch-run.json` and the README.
fn machine() -> Vec<(&'static str, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    vec![
        ("date", date),
        ("cpu", cpu),
        (
            "kernel",
            format!("Linux {}", read("/proc/sys/kernel/osrelease").trim()),
        ),
        ("command", "`cargo bench --bench dispatch`".to_owned()),
    ]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_run(before: &str) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut fields: Vec<String> = machine()
        .into_iter()
        .map(|(k, v)| format!("  \"{k}\": \"{}\"", v.replace('"', "'")))
        .collect();
    fields.push(format!("  \"cores\": {cores}"));
    fields.push(format!("  \"load_before\": \"{before}\""));
    fields.push(format!("  \"load_after\": \"{}\"", load_average()));
    let dir = target_dir().join("herald-bench");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(
        dir.join("dispatch-run.json"),
        format!("{{\n{}\n}}\n", fields.join(",\n")),
    );
}

fn main() {
    let load_before = load_average();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();
    bench_inline(&mut criterion);
    bench_stream(&mut criterion);
    bench_churn(&mut criterion);
    criterion.final_summary();
    let memory = measure_memory();
    report(&collect(), &memory);
    write_run(&load_before);
}
