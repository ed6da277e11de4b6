//! What the loom model files share (`tests/loom.rs`, `tests/loom_ring.rs`,
//! `tests/loom_value_ring.rs`).

/// Checks `f` under every interleaving loom explores. The preemption bound comes from
/// `LOOM_MAX_PREEMPTIONS` (read by `Builder::new`), which `tests/loom_runner.rs` sets; a run
/// by hand without it gets the runner's default, 2, rather than no bound.
pub(crate) fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}
