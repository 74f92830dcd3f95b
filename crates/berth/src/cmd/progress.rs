//! Per-layer progress of a pull or push: bars on a terminal, plain lines otherwise (like
//! Docker: one line per layer when it is done).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One line per layer (blob), keyed by digest.
pub struct Progress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    quiet: bool,
}

/// The 12 hex digits Docker shows for a layer or an image ID.
pub fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..12.min(hex.len())]
}

impl Progress {
    /// Bars when stderr is a terminal (and not `quiet`), plain lines on stdout otherwise.
    pub fn new(quiet: bool) -> Progress {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress {
            multi,
            bars: Mutex::new(HashMap::new()),
            quiet,
        }
    }

    fn bar(&self, digest: &str, total: u64) -> Option<ProgressBar> {
        let multi = self.multi.as_ref()?;
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let bar = bars.entry(digest.to_string()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(total));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix}: {msg:<16} [{bar:30}] {bytes}/{total_bytes}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(short(digest).to_string());
            b
        });
        if total > 0 {
            bar.set_length(total);
        }
        Some(bar.clone())
    }

    /// Bytes of `digest` moved so far.
    pub fn update(&self, digest: &str, what: &str, done: u64, total: u64) {
        if let Some(b) = self.bar(digest, total) {
            b.set_message(what.to_string());
            b.set_position(done);
        }
    }

    /// `digest` has a new status with no bytes to count ("Preparing"): the bar's message on a
    /// terminal, a line otherwise.
    pub fn status(&self, digest: &str, what: &str) {
        if self.quiet {
            return;
        }
        match self.bar(digest, 0) {
            Some(b) => b.set_message(what.to_string()),
            None => println!("{}: {what}", short(digest)),
        }
    }

    /// `digest` is finished: `what` says how ("Pull complete", "Pushed", "Already exists"…).
    pub fn done(&self, digest: &str, what: &str) {
        if self.quiet {
            return;
        }
        match self.bar(digest, 0) {
            Some(b) => {
                let len = b.length().unwrap_or(0);
                b.set_position(len);
                b.set_style(
                    ProgressStyle::with_template("{prefix}: {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.finish_with_message(what.to_string());
            }
            None => println!("{}: {what}", short(digest)),
        }
    }

    /// A line of its own (above the bars on a terminal).
    pub fn line(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => println!("{msg}"),
        }
    }
}
