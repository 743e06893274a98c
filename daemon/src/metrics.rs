//! Prometheus text metrics, served over plain HTTP on `--metrics ADDR`. Atomics only on the
//! hot path; labels come from small fixed sets (message types, verdict kinds, status codes),
//! never from user data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sls_protocol::{Message, Role, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 14] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

/// Verdict kinds, in the order their counters are kept.
const VERDICTS: [&str; 11] = [
    "accepted",
    "rejected",
    "locked",
    "rate_limited",
    "expired",
    "replayed",
    "unknown",
    "malformed",
    "needs_stronger_device",
    "pending",
    "declined",
];

/// A message type's counter slot: its low byte, plus 256 for daemon-sent types (high bit). Type
/// codes are `0x00NN`, `0x80NN` or `0xffff`, so slots never collide.
fn type_slot(code: u16) -> usize {
    usize::from(code & 0xff) | (usize::from(code >> 15) << 8)
}

/// The daemon's metrics.
pub struct Metrics {
    /// By message type, indexed by [`type_slot`]: atomics, no lock on the hot path.
    requests: Box<[AtomicU64]>,
    /// By verdict kind, in the order of [`VERDICTS`].
    verdicts: [AtomicU64; VERDICTS.len()],
    frame_errors: Mutex<BTreeMap<u16, u64>>,
    connections: [AtomicU64; 3],
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
    batches: AtomicU64,
    batched_frames: AtomicU64,
    bus_dropped: AtomicU64,
}

fn role_index(role: Role) -> usize {
    match role {
        Role::Frontend => 0,
        Role::Admin => 1,
        Role::Device => 2,
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: (0..512).map(|_| AtomicU64::new(0)).collect(),
            verdicts: Default::default(),
            frame_errors: Mutex::default(),
            connections: Default::default(),
            buckets: Default::default(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            batched_frames: AtomicU64::new(0),
            bus_dropped: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// A connection of `role` opened.
    pub fn connection_opened(&self, role: Role) {
        self.connections[role_index(role)].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection of `role` closed.
    pub fn connection_closed(&self, role: Role) {
        self.connections[role_index(role)].fetch_sub(1, Ordering::Relaxed);
    }

    /// One request of type `kind` answered with `reply` after `took`.
    pub fn request(&self, type_code: u16, reply: &Message, took: Duration) {
        self.requests[type_slot(type_code)].fetch_add(1, Ordering::Relaxed);
        if let Message::Judged { verdict } = reply {
            if let Some(i) = VERDICTS.iter().position(|v| *v == verdict.name()) {
                self.verdicts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        let us = took.as_micros() as u64;
        let i = BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// A frame refused with `status`.
    pub fn frame_error(&self, status: Status) {
        *self.frame_errors.lock().entry(status.0).or_default() += 1;
    }

    /// A note to the other nodes dropped: the bus's queue was full.
    pub fn bus_dropped(&self) {
        self.bus_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// One read's worth of frames handled together.
    pub fn batch(&self, frames: usize, _took: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_frames
            .fetch_add(frames as u64, Ordering::Relaxed);
    }

    /// The exposition text; `extra` are gauges and counters owned elsewhere (the core's).
    pub fn render(&self, extra: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP sls_requests_total Requests handled, by message type.\n# TYPE sls_requests_total counter\n");
        for (code, name, _) in Message::TYPES {
            let v = self.requests[type_slot(*code)].load(Ordering::Relaxed);
            if v > 0 {
                let _ = writeln!(out, "sls_requests_total{{type=\"{name}\"}} {v}");
            }
        }
        out.push_str("# HELP sls_verdicts_total Verdicts sent, by kind.\n# TYPE sls_verdicts_total counter\n");
        for (k, v) in VERDICTS.iter().zip(&self.verdicts) {
            let v = v.load(Ordering::Relaxed);
            if v > 0 {
                let _ = writeln!(out, "sls_verdicts_total{{verdict=\"{k}\"}} {v}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP sls_bus_dropped_total Notes to the other nodes dropped because the bus's queue was full.\n# TYPE sls_bus_dropped_total counter\nsls_bus_dropped_total {}",
            self.bus_dropped.load(Ordering::Relaxed)
        );
        out.push_str("# HELP sls_frame_errors_total Frames refused, by status code.\n# TYPE sls_frame_errors_total counter\n");
        for (k, v) in self.frame_errors.lock().iter() {
            let _ = writeln!(out, "sls_frame_errors_total{{status=\"0x{k:04x}\"}} {v}");
        }
        out.push_str(
            "# HELP sls_connections Open connections, by role.\n# TYPE sls_connections gauge\n",
        );
        for role in [Role::Frontend, Role::Admin, Role::Device] {
            let _ = writeln!(
                out,
                "sls_connections{{role=\"{}\"}} {}",
                role.name(),
                self.connections[role_index(role)].load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP sls_request_duration_seconds Server-side time per request.\n# TYPE sls_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "sls_request_duration_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *b as f64 / 1e6
            );
        }
        cumulative += self.buckets[BUCKETS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "sls_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "sls_request_duration_seconds_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "sls_request_duration_seconds_count {}",
            self.count.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE sls_read_batches_total counter\nsls_read_batches_total {}",
            self.batches.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE sls_batched_frames_total counter\nsls_batched_frames_total {}",
            self.batched_frames.load(Ordering::Relaxed)
        );
        for (name, kind, value) in extra {
            let _ = writeln!(out, "# TYPE sls_{name} {kind}\nsls_{name} {value}");
        }
        out
    }
}

/// Serves `GET /metrics` on `addr` until `shutdown` is cancelled; `render` makes the page. Each
/// scrape is a task on `tasks`.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((sock, _)) = accepted else { continue };
                let render = render.clone();
                let stop = shutdown.clone();
                // Tracked with the daemon's background tasks; a scrape in progress at shutdown
                // is dropped rather than waited for.
                tasks.spawn(async move {
                    tokio::select! {
                        () = answer(sock, render) => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Answers one scrape.
async fn answer(mut sock: tokio::net::TcpStream, render: Arc<dyn Fn() -> String + Send + Sync>) {
    let mut buf = [0u8; 2048];
    let n = match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await {
        Ok(Ok(n)) => n,
        _ => return,
    };
    let head = String::from_utf8_lossy(&buf[..n]);
    let (status, body) = if head.starts_with("GET /metrics ") {
        ("200 OK", render())
    } else {
        ("404 Not Found", "not found: GET /metrics\n".to_owned())
    };
    let resp = format!("HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let _ = sock.write_all(resp.as_bytes()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use sls_protocol::{DeviceId, DeviceKind, Grant, GrantKind, SecurityLevel, Verdict};

    #[test]
    fn every_verdict_and_type_has_its_own_counter() {
        let all = [
            Verdict::Accepted {
                device: DeviceId(1),
                kind: DeviceKind::DscPlus,
                level: SecurityLevel::Top,
                limits: SecurityLevel::Top.limits(),
                grant: Grant {
                    kind: GrantKind::Session,
                    valid_secs: 0,
                },
            },
            Verdict::Rejected { failures_left: 1 },
            Verdict::Locked { until_ms: 1 },
            Verdict::RateLimited { retry_after_ms: 1 },
            Verdict::Expired,
            Verdict::Replayed,
            Verdict::Unknown,
            Verdict::Malformed,
            Verdict::NeedsStrongerDevice {
                required: SecurityLevel::Top,
            },
            Verdict::Pending,
            Verdict::Declined,
        ];
        let m = Metrics::default();
        for v in all {
            m.request(
                0x0011,
                &Message::Judged { verdict: v },
                Duration::from_micros(5),
            );
        }
        let text = m.render(&[]);
        for name in VERDICTS {
            assert!(
                text.contains(&format!("sls_verdicts_total{{verdict=\"{name}\"}} 1")),
                "{name}"
            );
        }
        assert!(text.contains("sls_requests_total{type=\"Answer\"} 11"));
        let slots: std::collections::HashSet<usize> =
            Message::TYPES.iter().map(|t| type_slot(t.0)).collect();
        assert_eq!(slots.len(), Message::TYPES.len(), "type slots are distinct");
    }
}
