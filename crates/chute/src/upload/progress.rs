//! Progress on the terminal with `indicatif`: one bar per file and a total
//! bar with speed and time left, on stderr. Hidden when stderr is not a
//! terminal or with `--json`/`--quiet`, so scripts see only their output.
//! Also the optional bandwidth cap (`--limit-rate`), which paces the same
//! byte counts the bars show.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The bars of one run.
#[derive(Debug, Clone)]
pub struct Progress {
    multi: MultiProgress,
    total: ProgressBar,
    limiter: Option<Arc<RateLimiter>>,
}

impl Progress {
    /// Bars for `total_bytes` across `files` files; drawn only if `visible`.
    pub fn new(total_bytes: u64, files: usize, visible: bool, limit_rate: Option<u64>) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = if files > 1 {
            let bar = multi.add(ProgressBar::new(total_bytes));
            bar.set_style(style(
                "total {wide_bar:.green/blue} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            ));
            bar
        } else {
            // One file: its own bar shows everything, no second line.
            ProgressBar::hidden()
        };
        Self {
            multi,
            total,
            limiter: limit_rate.map(|r| Arc::new(RateLimiter::new(r))),
        }
    }

    /// A bar for one file of `size` bytes named `name`.
    pub fn file(&self, name: &str, size: u64) -> FileProgress {
        let bar = if self.total.is_hidden() {
            self.multi.add(ProgressBar::new(size))
        } else {
            self.multi.insert_before(&self.total, ProgressBar::new(size))
        };
        bar.set_style(style(
            "{msg:20!} {wide_bar:.cyan/blue} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        ));
        bar.set_message(name.to_owned());
        FileProgress {
            bar,
            total: self.total.clone(),
            limiter: self.limiter.clone(),
        }
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: &str) {
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }

    /// Runs `f` (which prints to stdout) with the bars out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.multi.suspend(f)
    }

    /// Removes the total bar at the end.
    pub fn finish(&self) {
        self.total.finish_and_clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// One file's bar (and its share of the total).
#[derive(Debug, Clone)]
pub struct FileProgress {
    bar: ProgressBar,
    total: ProgressBar,
    limiter: Option<Arc<RateLimiter>>,
}

impl FileProgress {
    /// Prints a note above the bars (plainly on stderr when they are hidden).
    pub fn println(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// `n` more bytes are on their way (already stored bytes at resume too).
    pub fn add(&self, n: u64) {
        self.bar.inc(n);
        self.total.inc(n);
    }

    /// `n` bytes counted by a failed attempt will be sent again.
    pub fn take_back(&self, n: u64) {
        self.bar.dec(n);
        self.total.dec(n);
    }

    /// Waits until `n` more bytes fit under `--limit-rate`.
    pub async fn pace(&self, n: u64) {
        if let Some(l) = &self.limiter {
            l.wait(n).await;
        }
    }

    /// Marks the file done (the bar stays, full).
    pub fn finish(&self) {
        self.bar.finish();
    }

    /// Clears the bar after a failure.
    pub fn abandon(&self) {
        self.bar.abandon();
    }
}

/// A shared byte budget of `rate` bytes a second across every request.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u64,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// At most `rate` bytes a second (at least 1).
    pub fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Reserves `n` bytes and sleeps until they may go.
    pub async fn wait(&self, n: u64) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(n as f64 / self.rate as f64);
            start
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limiter_paces_bytes() {
        let l = RateLimiter::new(1_000_000);
        let t = Instant::now();
        for _ in 0..5 {
            l.wait(20_000).await;
        }
        // Four 20 ms slots must have passed before the fifth could start.
        assert!(t.elapsed() >= Duration::from_millis(79), "{:?}", t.elapsed());
    }

    #[test]
    fn bars_count_and_take_back() {
        let p = Progress::new(100, 2, false, None);
        let f = p.file("a", 60);
        f.add(50);
        f.take_back(20);
        assert_eq!(f.bar.position(), 30);
        assert_eq!(p.total.position(), 30);
    }
}
