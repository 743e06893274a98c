//! The open loop of the throughput path ([`crate::raw`]): requests at a fixed rate, each sent
//! when it is due, latency from its due time (issue 13, item 4).
//!
//! ```text
//!  thread t: timerfd every `tick` ─▶ Notify ─▶ each connection of the thread wakes:
//!     requests due by now ─▶ free slots ─▶ one write
//!     a read's replies ─▶ latency = now − the request's due time ─▶ HdrHistogram
//! ```
//!
//! The schedule is fixed in advance: with `C` connections at `rate` requests/s in all, request
//! `k` of connection `c` is due `(c + k·C) / rate` s after the origin (the start of the
//! warm-up), so that the requests of all the connections together are evenly spaced. A request
//! goes out at the first tick or read of its connection at or after its due time, with every
//! other request due by then, in one write; its latency runs from its due time, not from its
//! write, so that neither the tick nor a wait for a slot is left out (no coordinated omission).
//! A request due while its connection has no free slot waits for one and is counted late.
//!
//! The requests due inside the window are the ones measured. After the window no request is
//! due any more; those outstanding, or still waiting for a slot, have until the drain deadline,
//! and the ones left then are counted unanswered. One clock read per tick and per read, none per
//! request.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use sls_protocol::{frame, Frame};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use sls_client::pipeline::Peer;

use crate::raw::{self, Conn, Driver, Shape, Stats, Tally};

/// An open loop's rate and timing.
#[derive(Debug, Clone)]
pub struct Open {
    /// Requests per second, in all (spread evenly over the connections and threads).
    pub rate: f64,
    /// The timer's period: what is due by a tick goes out at that tick, in one write per
    /// connection.
    pub tick: Duration,
    /// How long after the window the replies to its requests are still awaited.
    pub drain: Duration,
}

impl Open {
    /// The default tick, 100 µs: a request waits 50 µs on average for its write.
    pub const TICK: Duration = Duration::from_micros(100);

    /// `rate` requests/s, ticks of [`Open::TICK`], two seconds of drain.
    pub fn at(rate: f64) -> Open {
        Open {
            rate,
            tick: Open::TICK,
            drain: Duration::from_secs(2),
        }
    }

    /// Refuses a rate that is not a positive number, a tick outside 10 µs..100 ms, a drain
    /// over a minute.
    pub fn check(&self) -> anyhow::Result<()> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1e9) {
            bail!(
                "open loop: the rate must be more than 0 and at most 1e9 requests/s (got {})",
                self.rate
            );
        }
        if self.tick < Duration::from_micros(10) || self.tick > Duration::from_millis(100) {
            bail!("open loop: the tick must be between 10 µs and 100 ms");
        }
        if self.drain > Duration::from_secs(60) {
            bail!("open loop: the drain must be at most 60 s");
        }
        Ok(())
    }
}

/// One connection's due times, in ns since the origin.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// The connection's first request's due time.
    offset_ns: f64,
    /// Between two requests of the connection.
    period_ns: f64,
    /// Requests due before this one are the warm-up's (not measured).
    start_ns: u64,
    /// Requests due at or after this one are not sent.
    end_ns: u64,
}

impl Schedule {
    fn new(
        open: &Open,
        connections: usize,
        index: usize,
        warmup: Duration,
        duration: Duration,
    ) -> Schedule {
        let every_ns = 1e9 / open.rate;
        Schedule {
            offset_ns: index as f64 * every_ns,
            period_ns: every_ns * connections.max(1) as f64,
            start_ns: nanos(warmup),
            end_ns: nanos(warmup.saturating_add(duration)),
        }
    }

    /// Request `k`'s due time.
    fn due(&self, k: u64) -> u64 {
        (self.offset_ns + k as f64 * self.period_ns) as u64
    }

    /// The first request due at or after `t_ns`.
    fn first_at(&self, t_ns: u64) -> u64 {
        let guess = ((t_ns as f64 - self.offset_ns) / self.period_ns).max(0.0) as u64;
        let mut k = guess;
        while k > 0 && self.due(k - 1) >= t_ns {
            k -= 1;
        }
        while self.due(k) < t_ns {
            k += 1;
        }
        k
    }

    /// Requests due inside the window.
    fn measured(&self) -> u64 {
        self.first_at(self.end_ns)
            .saturating_sub(self.first_at(self.start_ns))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs an open loop of `open.rate` requests/s over `shape`'s connections (each with at most
/// `shape.in_flight` requests outstanding) against `peer`; each connection gets a driver from
/// `make_driver(connection_index)`. [`Stats::latency_us`] is then the latency of each request
/// due inside the window, from its due time to its reply. Blocks the calling thread.
pub fn run<D, F>(
    peer: Peer,
    config: quinn::ClientConfig,
    shape: &Shape,
    open: &Open,
    make_driver: F,
) -> anyhow::Result<Stats>
where
    D: Driver + Send + 'static,
    F: Fn(usize) -> D + Send + Sync + 'static,
{
    open.check()?;
    let (warmup, duration, connections) = (shape.warmup, shape.duration, shape.connections);
    let (tick, drain, o) = (open.tick, open.drain, open.clone());
    raw::drive(
        peer,
        config,
        shape,
        make_driver,
        move || ticker(tick),
        move |notify: Arc<Notify>, c: Conn<D>| {
            let schedule = Schedule::new(&o, connections, c.index, warmup, duration);
            // The window starts `warmup` after the origin (see `raw::drive`).
            let origin = c.window.start.checked_sub(warmup).unwrap_or(c.window.start);
            open_loop(c, notify, schedule, origin, drain)
        },
    )
}

/// A timerfd, for [`AsyncFd`].
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Starts this thread's ticker: a task that wakes every connection of the thread waiting on
/// the returned `Notify` every `tick` (a timerfd: tokio's own timer counts milliseconds). It
/// ends when the last connection drops the `Notify`.
fn ticker(tick: Duration) -> anyhow::Result<Arc<Notify>> {
    let fd = TimerFd::new(
        ClockId::CLOCK_MONOTONIC,
        TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
    )
    .context("timerfd")?;
    fd.set(
        Expiration::Interval(TimeSpec::from_duration(tick)),
        TimerSetTimeFlags::empty(),
    )
    .context("timerfd")?;
    // `AsyncFd::new` is deprecated for `register`, which is `unsafe` (forbidden here): the
    // registration must not outlive the descriptor. It cannot: the `Timer` owning the
    // descriptor lives inside the `AsyncFd`, which deregisters it before closing it.
    #[allow(deprecated)]
    let fd = AsyncFd::new(Timer(fd)).context("timerfd")?;
    let notify = Arc::new(Notify::new());
    let weak: Weak<Notify> = Arc::downgrade(&notify);
    tokio::spawn(async move {
        loop {
            let Ok(mut ready) = fd.readable().await else {
                return;
            };
            // Reads the count of expirations, all of them: the timer is drained, and the next
            // wait is for the next expiry (not an `EAGAIN` read first, one syscall a tick).
            match ready.try_io(|t| Ok(t.get_ref().0.wait()?)) {
                Ok(_) => ready.clear_ready(),
                Err(_would_block) => continue,
            }
            match weak.upgrade() {
                Some(n) => n.notify_waiters(),
                None => return,
            }
        }
    });
    Ok(notify)
}

/// Now, in ns since `origin`.
fn since(origin: Instant) -> u64 {
    nanos(Instant::now().saturating_duration_since(origin))
}

/// One connection's open loop: sends `schedule`'s requests when due (on the ticks of `tick`
/// and on reads), records their latency from their due time, until every request is answered
/// or the window's end + `drain`.
async fn open_loop<D: Driver>(
    c: Conn<D>,
    tick: Arc<Notify>,
    schedule: Schedule,
    origin: Instant,
    drain: Duration,
) -> Tally {
    let Conn {
        mut send,
        mut recv,
        mut driver,
        slots,
        window,
        ..
    } = c;
    let s = schedule;
    let mut tally = Tally::new();
    let mut out = BytesMut::with_capacity(slots.min(1024) * 96);
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    // Free slots, oldest first (a DSC+ slot's answer goes out after every other free slot's
    // request, not never).
    let mut free: VecDeque<usize> = (0..slots).collect();
    // Each busy slot's request's due time; `IDLE` when the slot is free.
    const IDLE: u64 = u64::MAX;
    let mut due_of = vec![IDLE; slots];
    let mut outstanding = 0usize;
    // The next request to send, and the first not yet looked at for lateness.
    let (mut next, mut late_from) = (0u64, 0u64);
    // Replies (expected or not) to the requests due in the window.
    let mut answered = 0u64;
    let deadline = tokio::time::sleep_until((window.end + drain).into());
    tokio::pin!(deadline);
    loop {
        let read = tokio::select! {
            biased;
            r = recv.read_chunk(64 * 1024, true) => Some(r),
            () = tick.notified() => None,
            () = &mut deadline => break,
        };
        let now = since(origin);
        if let Some(read) = read {
            match read {
                Ok(Some(chunk)) => inbuf.extend_from_slice(&chunk.bytes),
                _ => {
                    tally.unexpected("transport");
                    break;
                }
            }
            loop {
                let Frame { id, message } = match frame::decode(&mut inbuf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) if e.recoverable() => continue,
                    Err(_) => {
                        tally.unexpected("undecodable");
                        tally.unanswered = s.measured().saturating_sub(answered);
                        tally.scheduled = s.measured();
                        return tally;
                    }
                };
                let slot = (id as usize).wrapping_sub(1);
                if slot >= slots || due_of[slot] == IDLE {
                    tally.unexpected("unknown_id");
                    continue;
                }
                let due = std::mem::replace(&mut due_of[slot], IDLE);
                free.push_back(slot);
                outstanding -= 1;
                let counted = due >= s.start_ns;
                answered += u64::from(counted);
                match driver.reply(slot, message) {
                    Ok(units) if counted => {
                        tally.requests += 1;
                        tally.units += units;
                        let us = now.saturating_sub(due) / 1_000;
                        let _ = tally.latency_us.record(us.clamp(1, 60_000_000));
                    }
                    Ok(_) => {}
                    Err(why) => tally.unexpected(why),
                }
            }
        }
        // Every request due by now, each in a free slot.
        loop {
            let due = s.due(next);
            if due >= s.end_ns || due > now {
                break;
            }
            let Some(slot) = free.pop_front() else {
                // No free slot: the requests due by now not yet counted are late.
                let mut k = next.max(late_from);
                loop {
                    let d = s.due(k);
                    if d >= s.end_ns || d > now {
                        break;
                    }
                    tally.late += u64::from(d >= s.start_ns);
                    k += 1;
                }
                late_from = k;
                break;
            };
            due_of[slot] = due;
            outstanding += 1;
            driver.request(slot, slot as u32 + 1, &mut out);
            if due >= s.start_ns {
                let _ = tally.send_lag_us.record((now - due) / 1_000);
            }
            next += 1;
        }
        if !out.is_empty() {
            tokio::select! {
                biased;
                r = send.write_all(&out) => if r.is_err() {
                    tally.unexpected("transport");
                    break;
                },
                () = &mut deadline => break,
            }
            out.clear();
        }
        if outstanding == 0 && s.due(next) >= s.end_ns {
            break;
        }
    }
    let _ = send.finish();
    tally.scheduled = s.measured();
    tally.unanswered = tally.scheduled.saturating_sub(answered);
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connections_together_are_evenly_spaced_and_the_window_counted_once() {
        let open = Open::at(1_000.0);
        let (warmup, duration) = (Duration::from_millis(100), Duration::from_secs(1));
        let mut all = Vec::new();
        let mut measured = 0;
        for c in 0..3 {
            let s = Schedule::new(&open, 3, c, warmup, duration);
            measured += s.measured();
            let mut k = 0;
            while s.due(k) < s.end_ns {
                all.push(s.due(k));
                k += 1;
            }
        }
        all.sort_unstable();
        // 1,100 due in all (warm-up and window), 1 ms apart; 1,000 of them in the window.
        assert_eq!(all.len(), 1_100);
        assert_eq!(measured, 1_000);
        for w in all.windows(2) {
            let gap = w[1] - w[0];
            assert!((999_000..=1_001_000).contains(&gap), "{gap}");
        }
    }

    #[test]
    fn bad_rates_and_ticks_are_refused() {
        assert!(Open::at(0.0).check().is_err());
        assert!(Open::at(f64::NAN).check().is_err());
        assert!(Open::at(-5.0).check().is_err());
        let tick = Open {
            tick: Duration::from_secs(1),
            ..Open::at(10.0)
        };
        assert!(tick.check().is_err());
        assert!(Open::at(10.0).check().is_ok());
    }
}
