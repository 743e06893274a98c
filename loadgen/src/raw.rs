//! The throughput path: a batched closed loop on one long-lived stream per connection, with no
//! task, channel or lock per request (issue 13).
//!
//! ```text
//!  thread 0 (current_thread runtime, own endpoint) ─ conn 0 ─ slots 0..in_flight ─┐
//!  thread 1 (current_thread runtime, own endpoint) ─ conn 1 ─ slots 0..in_flight ─┼─QUIC─▶ server
//!  …  connections spread over the threads in turn                                 ┘
//! ```
//!
//! Each connection keeps `in_flight` slots busy. A slot has at most one request outstanding,
//! and its request id is the slot's index + 1, so a reply finds its slot by indexing, in any
//! order. Every read decodes all the frames it holds, asks the [`Driver`] for each slot's next
//! request, and sends them all with one write. Clock reads are one per read, not per request.
//!
//! [`Pipeline::call`](sls_client::pipeline::Pipeline::call) stays the path of the scenarios; this one
//! is for the regimes that measure a ceiling (the benches' echo, `run --raw`). Its open loop,
//! at a fixed request rate with latency from each request's due time, is [`crate::raw_open`]:
//! the same threads, connections and drivers (`drive`), another loop per connection.

use std::future::Future;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use hdrhistogram::Histogram;
use sls_protocol::{frame, Frame, Message, PROTOCOL_VERSION};

use sls_client::pipeline::{self as client, Peer};

/// What a connection's slots send and how they judge the replies.
pub trait Driver {
    /// Appends `slot`'s next request, framed with `id`, to `out`.
    fn request(&mut self, slot: usize, id: u32, out: &mut BytesMut);
    /// `slot`'s reply to its last request: how many units of work it completed (a request for
    /// an echo, a login for DSC+), or `Err` if it was not an answer the driver expected.
    fn reply(&mut self, slot: usize, reply: Message) -> Result<u64, &'static str>;
}

/// The shape of a closed-loop run.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Connections, one stream each.
    pub connections: usize,
    /// Requests in flight on each connection.
    pub in_flight: usize,
    /// Threads, one `current_thread` runtime and one endpoint each.
    pub threads: usize,
    /// Unmeasured time before the window.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// The `agent` of each connection's `Hello`.
    pub agent: String,
}

impl Shape {
    /// `connections` × `in_flight` over `threads`, a second of warm-up, ten measured.
    pub fn closed(connections: usize, in_flight: usize, threads: usize) -> Shape {
        Shape {
            connections,
            in_flight,
            threads,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            agent: "sls-loadgen/raw".into(),
        }
    }

    /// The same with this warm-up and measured window.
    pub fn measuring(self, warmup: Duration, duration: Duration) -> Shape {
        Shape {
            warmup,
            duration,
            ..self
        }
    }
}

/// What a run measured inside its window.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Replies received in the window.
    pub requests: u64,
    /// Units of work completed in the window (see [`Driver::reply`]).
    pub units: u64,
    /// Replies the drivers did not expect (in the whole run), by reason.
    pub unexpected: Vec<(&'static str, u64)>,
    /// The window's length.
    pub elapsed: Duration,
    /// This process's CPU time (user + system, all threads) over the window.
    pub cpu: Duration,
    /// Closed loop: latency of the units of work completed in the window (from their first
    /// request to their last reply), µs. Open loop ([`crate::raw_open`]): latency of each
    /// request due in the window, from its due time to its reply, µs.
    pub latency_us: Histogram<u64>,
    /// Open loop: requests due inside the window (0 in a closed loop).
    pub scheduled: u64,
    /// Open loop: of those, the ones that found no free slot when due (they waited for one;
    /// their latency still runs from their due time).
    pub late: u64,
    /// Open loop: of those, the ones without a reply by the drain deadline (never sent, or
    /// never answered).
    pub unanswered: u64,
    /// Open loop: how long after its due time each request of the window was written (the
    /// load generator's own share of the latency: the tick, a wait for a slot), µs.
    pub send_lag_us: Histogram<u64>,
}

impl Stats {
    /// Replies per second over the window.
    pub fn requests_per_s(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The load generator's own CPU per request, µs.
    pub fn cpu_us_per_request(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

/// This process's CPU time so far (user + system, every thread).
pub fn process_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec().max(0) as u64)
                    + Duration::from_micros(t.tv_usec().max(0) as u64)
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// A histogram of 1 µs to 60 s, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!())
}

/// One connection's tallies (the fields of [`Stats`] that add up).
pub(crate) struct Tally {
    pub(crate) requests: u64,
    pub(crate) units: u64,
    pub(crate) unexpected: Vec<(&'static str, u64)>,
    pub(crate) latency_us: Histogram<u64>,
    pub(crate) scheduled: u64,
    pub(crate) late: u64,
    pub(crate) unanswered: u64,
    pub(crate) send_lag_us: Histogram<u64>,
}

impl Tally {
    pub(crate) fn new() -> Tally {
        Tally {
            requests: 0,
            units: 0,
            unexpected: Vec::new(),
            latency_us: histogram(),
            scheduled: 0,
            late: 0,
            unanswered: 0,
            send_lag_us: histogram(),
        }
    }

    pub(crate) fn unexpected(&mut self, why: &'static str) {
        match self.unexpected.iter_mut().find(|(w, _)| *w == why) {
            Some((_, n)) => *n += 1,
            None => self.unexpected.push((why, 1)),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.units += other.units;
        for (why, n) in other.unexpected {
            for _ in 0..n {
                self.unexpected(why);
            }
        }
        let _ = self.latency_us.add(&other.latency_us);
        self.scheduled += other.scheduled;
        self.late += other.late;
        self.unanswered += other.unanswered;
        let _ = self.send_lag_us.add(&other.send_lag_us);
    }
}

/// The measured window, shared by every connection.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    pub(crate) start: Instant,
    pub(crate) end: Instant,
}

/// One connection, handed to its loop once the window is set.
pub(crate) struct Conn<D> {
    /// The connection's index in the run (`0..connections`).
    pub(crate) index: usize,
    pub(crate) send: quinn::SendStream,
    pub(crate) recv: quinn::RecvStream,
    pub(crate) driver: D,
    /// Its slots (requests in flight at most).
    pub(crate) slots: usize,
    pub(crate) window: Window,
}

/// Opens a stream on `conn` and does the version handshake with a frame of id `id`.
pub async fn open(
    conn: &quinn::Connection,
    agent: &str,
    id: u32,
) -> anyhow::Result<(quinn::SendStream, quinn::RecvStream)> {
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut buf = BytesMut::new();
    let hello = Message::Hello {
        min_version: PROTOCOL_VERSION,
        max_version: PROTOCOL_VERSION,
        agent: sls_protocol::clip_text(agent, sls_protocol::limits::MAX_TEXT),
    };
    frame::encode(id, &hello, &mut buf)?;
    send.write_all(&buf).await?;
    buf.clear();
    loop {
        if let Some(Frame { message, .. }) = frame::decode(&mut buf)? {
            match message {
                Message::Welcome { .. } => return Ok((send, recv)),
                other => bail!("handshake refused: {other:?}"),
            }
        }
        match recv.read_chunk(64 * 1024, true).await? {
            Some(chunk) => buf.extend_from_slice(&chunk.bytes),
            None => bail!("stream closed during the handshake"),
        }
    }
}

/// Drives `slots` requests in flight on one stream until `stop`, then drains the replies still
/// outstanding (for at most `drain`). Replies received inside `window` are counted.
async fn closed<D: Driver>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    driver: &mut D,
    slots: usize,
    window: Window,
    drain: Duration,
) -> Tally {
    let mut tally = Tally::new();
    let mut out = BytesMut::with_capacity(slots * 96);
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    let mut busy = vec![false; slots];
    let now = Instant::now();
    // When each slot's unit of work (its first request) began.
    let mut began = vec![now; slots];
    for (slot, b) in busy.iter_mut().enumerate() {
        driver.request(slot, slot as u32 + 1, &mut out);
        *b = true;
    }
    let mut outstanding = slots;
    if send.write_all(&out).await.is_err() {
        tally.unexpected("transport");
        return tally;
    }
    out.clear();
    let mut stopping = false;
    while outstanding > 0 {
        let read = if stopping {
            let left = (window.end + drain).saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, recv.read_chunk(64 * 1024, true)).await {
                Ok(r) => r,
                Err(_) => break,
            }
        } else {
            recv.read_chunk(64 * 1024, true).await
        };
        match read {
            Ok(Some(chunk)) => inbuf.extend_from_slice(&chunk.bytes),
            _ => {
                tally.unexpected("transport");
                break;
            }
        }
        let now = Instant::now();
        let counted = now >= window.start && now < window.end;
        loop {
            let Frame { id, message } = match frame::decode(&mut inbuf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) if e.recoverable() => continue,
                Err(_) => {
                    tally.unexpected("undecodable");
                    return tally;
                }
            };
            let slot = (id as usize).wrapping_sub(1);
            if slot >= slots || !busy[slot] {
                tally.unexpected("unknown_id");
                continue;
            }
            busy[slot] = false;
            outstanding -= 1;
            match driver.reply(slot, message) {
                Ok(units) => {
                    if counted {
                        tally.requests += 1;
                        tally.units += units;
                        if units > 0 {
                            let us = now.duration_since(began[slot]).as_micros() as u64;
                            let _ = tally.latency_us.record(us.clamp(1, 60_000_000));
                        }
                    }
                    if units > 0 {
                        began[slot] = now;
                    }
                }
                Err(why) => {
                    tally.unexpected(why);
                    began[slot] = now;
                }
            }
            if !stopping {
                driver.request(slot, id, &mut out);
                busy[slot] = true;
                outstanding += 1;
            }
        }
        if !out.is_empty() {
            if send.write_all(&out).await.is_err() {
                tally.unexpected("transport");
                break;
            }
            out.clear();
        }
        if !stopping && now >= window.end {
            stopping = true;
        }
    }
    let _ = send.finish();
    tally
}

/// Runs a closed loop of `shape` against `peer`: each connection gets a driver from
/// `make_driver(connection_index)`. Blocks the calling thread (the connections run on threads
/// of their own); call it from a blocking context.
pub fn run<D, F>(
    peer: Peer,
    config: quinn::ClientConfig,
    shape: &Shape,
    make_driver: F,
) -> anyhow::Result<Stats>
where
    D: Driver + Send + 'static,
    F: Fn(usize) -> D + Send + Sync + 'static,
{
    drive(
        peer,
        config,
        shape,
        make_driver,
        || Ok(()),
        |(), c: Conn<D>| async move {
            let mut driver = c.driver;
            closed(
                c.send,
                c.recv,
                &mut driver,
                c.slots,
                c.window,
                Duration::from_secs(5),
            )
            .await
        },
    )
}

/// The threads, connections and window of a run, each connection's loop being
/// `conn_loop(setup(), connection)`: `setup` runs once per thread, inside its runtime, when the
/// window is set (the open loop's timer), and its value is handed to each connection of the
/// thread. Blocks the calling thread.
pub(crate) fn drive<D, F, T, S, L, Fut>(
    peer: Peer,
    config: quinn::ClientConfig,
    shape: &Shape,
    make_driver: F,
    setup: S,
    conn_loop: L,
) -> anyhow::Result<Stats>
where
    D: Driver + Send + 'static,
    F: Fn(usize) -> D + Send + Sync + 'static,
    T: Clone + Send + 'static,
    S: Fn() -> anyhow::Result<T> + Send + Sync + 'static,
    L: Fn(T, Conn<D>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let threads = shape.threads.clamp(1, shape.connections.max(1));
    let make_driver = Arc::new(make_driver);
    let (setup, conn_loop) = (Arc::new(setup), Arc::new(conn_loop));
    // Every thread connects, then all wait here so that the window starts after the handshakes.
    let ready = Arc::new(Barrier::new(threads + 1));
    let (start_tx, start_rx) = std::sync::mpsc::channel::<Window>();
    let start_rx = Arc::new(std::sync::Mutex::new(start_rx));
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        let conns: Vec<usize> = (t..shape.connections).step_by(threads).collect();
        let (config, ready, start_rx, make_driver) = (
            config.clone(),
            ready.clone(),
            start_rx.clone(),
            make_driver.clone(),
        );
        let (setup, conn_loop) = (setup.clone(), conn_loop.clone());
        let (slots, agent, peer) = (shape.in_flight.max(1), shape.agent.clone(), peer.clone());
        let handle = std::thread::Builder::new().name(format!("raw-{t}")).spawn(
            move || -> anyhow::Result<Tally> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let rt = match rt {
                    Ok(rt) => rt,
                    Err(e) => {
                        // The others (and the caller) wait for every thread at the barrier.
                        ready.wait();
                        return Err(e.into());
                    }
                };
                rt.block_on(async move {
                    let opened = connect_all(&peer, &config, &conns, &agent, slots).await;
                    ready.wait();
                    let (endpoint, opened) = opened?;
                    let window = start_rx
                        .lock()
                        .ok()
                        .and_then(|rx| rx.recv().ok())
                        .context("no start")?;
                    let shared = setup()?;
                    let mut tasks = tokio::task::JoinSet::new();
                    for (i, (conn, send, recv)) in opened.into_iter().enumerate() {
                        let c = Conn {
                            index: conns[i],
                            send,
                            recv,
                            driver: make_driver(conns[i]),
                            slots,
                            window,
                        };
                        let looping = conn_loop(shared.clone(), c);
                        tasks.spawn(async move {
                            let tally = looping.await;
                            conn.close(0u32.into(), b"done");
                            tally
                        });
                    }
                    drop(shared);
                    let mut total = Tally::new();
                    while let Some(done) = tasks.join_next().await {
                        total.merge(done?);
                    }
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
                    Ok(total)
                })
            },
        )?;
        handles.push(handle);
    }
    ready.wait();
    let start = Instant::now() + shape.warmup;
    let window = Window {
        start,
        end: start + shape.duration,
    };
    for _ in 0..threads {
        let _ = start_tx.send(window);
    }
    std::thread::sleep(window.start.saturating_duration_since(Instant::now()));
    let cpu0 = process_cpu();
    std::thread::sleep(window.end.saturating_duration_since(Instant::now()));
    let cpu = process_cpu().saturating_sub(cpu0);
    let mut total = Tally::new();
    for h in handles {
        let tally = h
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        total.merge(tally);
    }
    Ok(Stats {
        requests: total.requests,
        units: total.units,
        unexpected: total.unexpected,
        elapsed: shape.duration,
        cpu,
        latency_us: total.latency_us,
        scheduled: total.scheduled,
        late: total.late,
        unanswered: total.unanswered,
        send_lag_us: total.send_lag_us,
    })
}

type Opened = (quinn::Connection, quinn::SendStream, quinn::RecvStream);

/// Connects each of `conns` on one endpoint (one UDP socket) of this thread's runtime, and
/// opens its stream.
async fn connect_all(
    peer: &Peer,
    config: &quinn::ClientConfig,
    conns: &[usize],
    agent: &str,
    slots: usize,
) -> anyhow::Result<(quinn::Endpoint, Vec<Opened>)> {
    let endpoint = client::endpoint("127.0.0.1:0".parse()?)?;
    let mut out = Vec::with_capacity(conns.len());
    for i in conns {
        let conn = peer.connect(&endpoint, config.clone()).await?;
        let (send, recv) = open(&conn, &format!("{agent}-{i}"), slots as u32 + 1).await?;
        out.push((conn, send, recv));
    }
    Ok((endpoint, out))
}

/// The bare echo's client side: every request an `Answer` frame, every reply expected to be a
/// `Judged`. The frame is encoded once; each request copies it and writes its id.
#[derive(Clone)]
pub struct Echo {
    template: BytesMut,
}

impl Default for Echo {
    fn default() -> Self {
        Echo::new()
    }
}

impl Echo {
    /// The `Answer` a login frontend sends (a 16-byte transaction, an 8-digit answer, an IPv4
    /// client), framed with id 0.
    pub fn new() -> Echo {
        let mut template = BytesMut::new();
        let answer = Message::Answer {
            txn: sls_protocol::TxnId(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            response: "30417852".into(),
            client: std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 9)),
        };
        frame::encode(0, &answer, &mut template).unwrap_or_else(|_| unreachable!());
        Echo { template }
    }

    /// Bytes of one request frame.
    pub fn request_len(&self) -> usize {
        self.template.len()
    }
}

impl Driver for Echo {
    fn request(&mut self, _slot: usize, id: u32, out: &mut BytesMut) {
        let at = out.len();
        out.extend_from_slice(&self.template);
        // The id is bytes 6..10 of the header (length, type, id), big-endian.
        out[at + 6..at + 10].copy_from_slice(&id.to_be_bytes());
    }

    fn reply(&mut self, _slot: usize, reply: Message) -> Result<u64, &'static str> {
        match reply {
            Message::Judged { .. } => Ok(1),
            _ => Err("not_judged"),
        }
    }
}
