//! Running harnesses as bounded property tests: how many cases (`BERTH_FUZZ_CASES`), which
//! seed (`BERTH_FUZZ_SEED`: a number, or `random`; fixed by default so that a normal test
//! run is repeatable), and a deadline per case so that a hang fails the test instead of
//! holding it forever.

use std::sync::mpsc;
use std::time::Duration;

use proptest::test_runner::{Config, RngSeed};

/// Cases per property: `BERTH_FUZZ_CASES`, else `default` (small: the normal test run
/// takes a few seconds per property).
pub fn cases(default: u32) -> u32 {
    std::env::var("BERTH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The proptest configuration: [`cases`], the seed from `BERTH_FUZZ_SEED`, no regression
/// files written into the source tree (a failure prints its minimal input instead).
pub fn config(default_cases: u32) -> Config {
    let rng_seed = match std::env::var("BERTH_FUZZ_SEED").ok().as_deref() {
        Some("random") => RngSeed::Random,
        Some(n) => RngSeed::Fixed(n.parse().expect("BERTH_FUZZ_SEED: a number or `random`")),
        None => RngSeed::Fixed(0x0062_6572_7468),
    };
    Config {
        cases: cases(default_cases),
        failure_persistence: None,
        rng_seed,
        max_shrink_iters: 2048,
        ..Config::default()
    }
}

/// How long one case may take before it counts as a hang.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Run `f` on another thread; a panic there is re-raised here, and a case still running
/// after [`DEADLINE`] fails (naming `what`).
pub fn with_deadline<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("fuzz-case".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .expect("spawning the case's thread");
    match rx.recv_timeout(DEADLINE) {
        Ok(Ok(v)) => {
            let _ = handle.join();
            v
        }
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what}: still running after {DEADLINE:?}: a hang"),
    }
}
