//! Logging that cannot take the daemon down, and warnings that cannot flood.
//!
//! - **Never panics.** `tracing_subscriber::fmt` writes each event with `write_all` on its
//!   writer; if that fails (stderr on a full disk, a closed pipe) and `log_internal_errors` is
//!   on, which `fmt()` turns on, it reports the failure with `eprintln!`, which panics when
//!   stderr cannot be written: the task that logged dies, and with it the stream it served.
//!   [`Stderr`] swallows write errors (a log line that cannot be written is lost, nothing
//!   else), and `main` also turns internal errors off. [`say`] is `eprintln!` that cannot
//!   panic, for the daemon's own lines.
//! - **One format.** Under `--log-format json` ([`set_json`]), [`say`] writes its line as a
//!   JSON object too, with the fields tracing's JSON lines have (`timestamp`, `level`,
//!   `fields.message`, `target`), so that every line of stderr is one object.
//! - **Rate-limited.** A [`Throttle`] lets one warning of a cause through per period and counts
//!   the ones it held back, for warnings a peer or a failing disk can repeat in a loop.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A [`tracing_subscriber::fmt::MakeWriter`] for stderr whose writes never fail.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

/// The writer [`Stderr`] makes.
#[derive(Debug)]
pub struct StderrWriter;

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Lost if stderr cannot take it: a log line is never worth a request.
        let _ = std::io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = StderrWriter;

    fn make_writer(&'a self) -> StderrWriter {
        StderrWriter
    }
}

/// Whether [`say`] writes JSON objects (`--log-format json`).
static JSON: AtomicBool = AtomicBool::new(false);

/// From now on, [`say`] writes each line as a JSON object (`--log-format json`).
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Writes `args` and a newline to stderr, ignoring errors (`eprintln!` panics on them); a JSON
/// object on the line after [`set_json`].
pub fn say(args: std::fmt::Arguments<'_>) {
    let line = if JSON.load(Ordering::Relaxed) {
        json_line(&args.to_string())
    } else {
        args.to_string()
    };
    let mut e = std::io::stderr().lock();
    let _ = e
        .write_all(line.as_bytes())
        .and_then(|()| e.write_all(b"\n"));
}

/// `message` as tracing's JSON formatter writes an INFO event of target `slsd`.
fn json_line(message: &str) -> String {
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
    let mut timestamp = String::new();
    let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
    serde_json::json!({
        "timestamp": timestamp,
        "level": "INFO",
        "fields": { "message": message },
        "target": "slsd",
    })
    .to_string()
}

/// At most one warning per `every`; counts those held back in between.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Debug)]
struct ThrottleState {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// A throttle letting one warning through per `every` (usable in a `static`).
    pub const fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            state: Mutex::new(ThrottleState {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// Whether to log now: `Some(n)` with the `n` warnings held back since the last one
    /// logged, or `None` (this one is held back and counted).
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    /// [`Throttle::allow`] at `now`.
    pub fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock();
        let due = s
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if due {
            s.last = Some(now);
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed = s.suppressed.saturating_add(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_through_per_period_and_counts_the_rest() {
        let t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.allow_at(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(t.allow_at(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(t.allow_at(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(t.allow_at(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.allow_at(t0 + Duration::from_secs(25)), Some(1));
    }

    #[test]
    fn a_said_line_in_json_is_one_object_with_the_message() {
        let line = json_line("slsd: created /d/tls/ca.pem \"quoted\"\nnext");
        assert!(!line.contains('\n'), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(
            v["fields"]["message"],
            "slsd: created /d/tls/ca.pem \"quoted\"\nnext"
        );
        assert_eq!(v["level"], "INFO");
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.len() > 10),
            "{line}"
        );
    }

    #[test]
    fn the_stderr_writer_reports_every_write_as_done() {
        let mut w = StderrWriter;
        assert_eq!(w.write(b"").ok(), Some(0));
        assert!(w.flush().is_ok());
    }
}
