//! The history: every request the storm sent and what came back, and every fault and heal of the
//! nemesis, one JSON object a line, appended as it happens (a writer task owns the file). The
//! checks read the same records from memory; the file is what a person reads after a failure.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// What a request was meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// `Begin`: a challenge, for a wrong or a right answer after it.
    Begin,
    /// A wrong answer (counts as a failure, R11).
    Wrong,
    /// The right answer (a success resets the count, R11).
    Right,
    /// The right answer sent again to a challenge already answered (R12: refused as a replay).
    Replay,
    /// The right answer to a challenge opened before the user was locked (R11: refused).
    RightWhileLocked,
}

/// What came back, as the checks class it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "what")]
pub enum Outcome {
    /// A challenge was issued.
    Challenge,
    /// A verdict left the daemon: acknowledged (its name, e.g. `accepted`, `locked`).
    Verdict(String),
    /// A `Rejected` verdict, with the failures it says are left before the lock (R11).
    Rejected(u8),
    /// An `Error` frame with this status: the request may or may not have taken effect
    /// (`UNAVAILABLE` after a write whose WAIT timed out).
    Error(u16),
    /// No answer (timeout, a connection lost): may or may not have taken effect.
    Lost(String),
    /// Not sent: the node was down (no connection to it). Took no effect.
    NotSent,
}

impl Outcome {
    /// The daemon acknowledged this verdict.
    pub fn is(&self, verdict: &str) -> bool {
        match self {
            Outcome::Verdict(v) => v == verdict,
            Outcome::Rejected(_) => verdict == "rejected",
            _ => false,
        }
    }

    /// Whether the request may have changed state without a verdict saying which way.
    pub fn indeterminate(&self) -> bool {
        matches!(self, Outcome::Error(_) | Outcome::Lost(_))
    }
}

/// One request and its answer.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// Sent, ms since the run began.
    pub t_ms: u64,
    /// Answered (or given up), µs after it was sent.
    pub took_us: u64,
    /// The slsd node it went to (0, 1, 2).
    pub node: usize,
    /// The user.
    pub user: String,
    /// The transaction (hex), once a challenge was issued.
    pub txn: Option<String>,
    /// What it was meant to be.
    pub intent: Intent,
    /// What came back.
    pub outcome: Outcome,
}

/// One line of the history.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Line {
    /// A request of the storm.
    Request(Request),
    /// A fault, a heal, a readiness measure: free text the person reading needs.
    Nemesis {
        /// Ms since the run began.
        t_ms: u64,
        /// The fault cycle (from 1).
        cycle: usize,
        /// What happened.
        event: String,
    },
}

/// Appends lines to the history file; cheap to clone.
#[derive(Clone)]
pub struct History {
    tx: mpsc::UnboundedSender<Line>,
    start: Instant,
}

impl History {
    /// Creates (truncates) `path` and a task that appends what [`History::record`] sends; the
    /// task ends, flushed, once every clone is dropped. `start` is the run's time zero.
    ///
    /// # Errors
    /// The file cannot be created.
    pub async fn create(
        path: &Path,
        start: Instant,
    ) -> anyhow::Result<(History, tokio::task::JoinHandle<anyhow::Result<PathBuf>>)> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.ok();
        }
        let file = tokio::fs::File::create(path)
            .await
            .with_context(|| format!("creating the history file {}", path.display()))?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Line>();
        let path = path.to_path_buf();
        let writer = tokio::spawn(async move {
            let mut out = tokio::io::BufWriter::new(file);
            while let Some(line) = rx.recv().await {
                let mut text = serde_json::to_vec(&line)?;
                text.push(b'\n');
                out.write_all(&text).await?;
            }
            out.flush().await?;
            Ok(path)
        });
        Ok((History { tx, start }, writer))
    }

    /// Ms since the run began.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Appends `line` (dropped if the writer is gone, which happens only at the end).
    pub fn record(&self, line: Line) {
        let _ = self.tx.send(line);
    }

    /// Appends a nemesis event and prints it.
    pub fn event(&self, cycle: usize, event: String) {
        let t_ms = self.now_ms();
        println!("[{:>7.1} s] cycle {cycle}: {event}", t_ms as f64 / 1000.0);
        self.record(Line::Nemesis { t_ms, cycle, event });
    }
}
