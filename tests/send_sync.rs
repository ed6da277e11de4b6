//! Compile-time checks: every public handle, report, error and future is `Send` and `Sync`
//! (and `Unpin` where a user would poll it by hand). A regression here fails the build.

use std::fmt::Debug;

use herald::{
    BufferStats, CenterBuilder, CoalesceBy, DeadNotification, Lagged, Notification,
    NotificationCenter, NotificationStream, ObserverBuilder, ObserverId, ObserverPanicked,
    Overflow, PanicPolicy, PostReport, Poster, RecvError, SenderId, Stats, Subscription,
    TryRecvError,
};

struct Ev;
impl Notification for Ev {}

fn require_send<T: Send>(_: &T) {}
fn require_sync<T: Sync>(_: &T) {}
fn require_unpin<T: Unpin>(_: &T) {}
fn require_static<T: 'static>(_: &T) {}

/// Send + Sync + 'static, the bound a value needs to cross threads and tasks freely.
macro_rules! assert_thread_safe {
    ($($ty:ty),+ $(,)?) => {
        $(const _: fn() = || {
            fn check<T: Send + Sync + 'static>() {}
            check::<$ty>();
        };)+
    };
}

/// Errors: usable in `Box<dyn Error + Send + Sync>` and printable.
macro_rules! assert_error {
    ($($ty:ty),+ $(,)?) => {
        $(const _: fn() = || {
            fn check<T: std::error::Error + Send + Sync + Debug + 'static>() {}
            check::<$ty>();
        };)+
    };
}

assert_thread_safe!(
    NotificationCenter,
    CenterBuilder,
    Poster<Ev>,
    ObserverBuilder<Ev>,
    Subscription,
    NotificationStream<Ev>,
    PostReport,
    Stats,
    BufferStats,
    ObserverId,
    SenderId,
    PanicPolicy,
    Overflow<Ev>,
    CoalesceBy<Ev>,
    ObserverPanicked,
    DeadNotification,
    RecvError,
    TryRecvError,
    Lagged,
);

assert_error!(RecvError, TryRecvError, Lagged);

// Handles a user keeps in structs and moves around are `Unpin`.
const _: fn() = || {
    fn check<T: Unpin>() {}
    check::<NotificationCenter>();
    check::<Poster<Ev>>();
    check::<Subscription>();
    check::<NotificationStream<Ev>>();
};

// The stream is a `futures::Stream` a user can `.next()` without pinning.
const _: fn() = || {
    fn check<S: futures::Stream<Item = Result<std::sync::Arc<Ev>, Lagged>> + Unpin + Send>() {}
    check::<NotificationStream<Ev>>();
};

#[test]
fn futures_are_send_and_sync() {
    let center = NotificationCenter::new();
    let channel = center.poster::<Ev>();
    let mut stream = center.stream::<Ev>();

    // `NotificationStream::recv`: spawnable on a multi-threaded runtime. Like tokio's
    // `broadcast::Receiver::recv` it is an `async fn`, so not `Unpin`: `select!` pins it, and
    // `poll_recv` / `Stream::poll_next` are the pin-free forms.
    let recv = stream.recv();
    require_send(&recv);
    require_sync(&recv);
    drop(recv);
    let next = futures::StreamExt::next(&mut stream);
    require_send(&next);
    require_unpin(&next);
    drop(next);

    // `NotificationCenter::post_async` and the typed handle's forms.
    let post = center.post_async(Ev);
    require_send(&post);
    require_sync(&post);
    drop(post);

    let post = channel.post_async(Ev);
    require_send(&post);
    require_sync(&post);
    drop(post);

    let post = channel.post_async_from(SenderId::new(), Ev);
    require_send(&post);
    require_sync(&post);
    drop(post);
}

#[test]
fn futures_are_static_when_they_own_their_handles() {
    // A task that owns clones of the handles is `'static` and can be given to `tokio::spawn`.
    let center = NotificationCenter::new();
    let mut stream = center.stream::<Ev>();
    let owned = {
        let center = center.clone();
        async move { center.post_async(Ev).await }
    };
    require_send(&owned);
    require_static(&owned);
    let receiving = async move { stream.recv().await.is_ok() };
    require_send(&receiving);
    require_static(&receiving);
    drop(owned);
    drop(receiving);
}

#[test]
fn handles_are_send_and_sync_as_values() {
    let center = NotificationCenter::new();
    let channel = center.poster::<Ev>();
    let builder = center.observer::<Ev>();
    let subscription = center.observe(|_: &Ev| {});
    let stream = center.stream::<Ev>();
    let report = center.post(Ev);
    let stats = center.stats::<Ev>();

    require_send(&center);
    require_sync(&center);
    require_send(&channel);
    require_sync(&channel);
    require_send(&builder);
    require_sync(&builder);
    require_send(&subscription);
    require_sync(&subscription);
    require_send(&stream);
    require_sync(&stream);
    require_send(&report);
    require_send(&stats);
    require_sync(&stats);
    require_send(&stats.buffers);

    // And they cross threads for real.
    let moved = std::thread::spawn(move || {
        drop(builder);
        drop(subscription);
        (channel.post(Ev), stream.len())
    })
    .join()
    .unwrap();
    assert_eq!(moved.1, 2);
}
