//! Issue 16, item 4, measured against a real `slsd` (release): what a hostile peer can hold,
//! and what a handshake flood does to honest clients. Loopback only; every loop is bounded in
//! count and in time.
//!
//! `cargo run --release -p sls-benches --bin netbounds -- attack [--sources 1] [--role device]`
//! : the partial-frame attack of the issue: `--conns` (50) connections × `--streams` (64)
//! streams, each sending the header of a 65,530-byte frame and 60,000 bytes of it, then only
//! QUIC PINGs for `--hold` seconds. Prints slsd's VmRSS before, at its peak while held, and
//! after, with how the daemon answered (connections admitted or closed, streams stopped).
//!
//! `cargo run --release -p sls-benches --bin netbounds -- flood`: honest frontends from
//! 127.0.0.1 log in (DSC+, open loop at `--rate` logins/s) for `--secs`, alone and then while
//! `--flood` tasks on 127.0.0.2 open and drop IB Key app connections as fast as they can
//! (bounded by `--flood-max` handshakes); prints both p50/p99 and the daemon's admission
//! counters.

use sls_benches::rss_kb;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use sls_client::pipeline as client;
use sls_client::ClientTls;
use sls_loadgen::daemon::{find_slsd, Daemon, NO_LIMITS};
use sls_loadgen::fleet::Mix;
use sls_loadgen::harness::{stats, Client};
use sls_loadgen::run::{self as lrun, FleetSpec};
use sls_loadgen::scenario::{Behaviour, Scenario};
use sls_loadgen::schedule::{LoadModel, Plan};
use sls_protocol::{Role, ALPN_DEVICE, ALPN_FRONTEND};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum What {
    /// The partial-frame memory hold.
    Attack,
    /// Honest p99 with and without a handshake flood.
    Flood,
    /// Internal: the flood alone, in a process of its own (`--target`, `--tls-dir`).
    #[value(hide = true)]
    FloodOnly,
}

#[derive(Parser)]
struct Args {
    /// What to measure.
    #[arg(value_enum)]
    what: What,
    /// Attack: connections.
    #[arg(long, default_value_t = 50)]
    conns: usize,
    /// Attack: streams per connection.
    #[arg(long, default_value_t = 64)]
    streams: usize,
    /// Attack: source addresses (127.0.0.2 …), the connections spread over them.
    #[arg(long, default_value_t = 1)]
    sources: u8,
    /// Attack: the role: `device` (the device ALPN, no certificate) or `frontend` (a stolen
    /// frontend certificate).
    #[arg(long, default_value = "device")]
    role: String,
    /// Attack: seconds to hold after sending.
    #[arg(long, default_value_t = 8)]
    hold: u64,
    /// Flood: seconds measured per run.
    #[arg(long, default_value_t = 8)]
    secs: u64,
    /// Flood: honest logins per second (open loop).
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Flood: concurrent flooding tasks.
    #[arg(long, default_value_t = 128)]
    flood: usize,
    /// Flood: most handshakes the flood attempts in all.
    #[arg(long, default_value_t = 200_000)]
    flood_max: u64,
    /// Flood: run the flooding process at this niceness (1 to 19; 0: as the rest).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=19))]
    flood_nice: u8,
    /// Internal (flood-only): the daemon's address.
    #[arg(long, hide = true)]
    target: Option<SocketAddr>,
    /// Internal (flood-only): the daemon's certificates.
    #[arg(long, hide = true)]
    tls_dir: Option<std::path::PathBuf>,
    /// Extra slsd flags, e.g. `--extra=--retry-above=1024`.
    #[arg(long, allow_hyphen_values = true)]
    extra: Vec<String>,
}

/// A client configuration for `role`, PINGing every second.
fn config(tls_dir: &std::path::Path, role: Role) -> anyhow::Result<quinn::ClientConfig> {
    let alpn = if role == Role::Device {
        ALPN_DEVICE
    } else {
        ALPN_FRONTEND
    };
    let mut cfg = ClientTls::from_dir(tls_dir, role)?.quinn_config(alpn)?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(Duration::from_secs(1)))
        .max_concurrent_bidi_streams(0u32.into());
    cfg.transport_config(Arc::new(transport));
    Ok(cfg)
}

/// The daemon's admission counters that are not zero, as `name=value`.
async fn counters(d: &Daemon) -> anyhow::Result<String> {
    let admin = Client::connect(&d.target(), Role::Admin).await?;
    let all = stats(&admin.pipe).await?;
    let mut out: Vec<String> = [
        "connections_live",
        "connections_unproven",
        "partial_frame_bytes",
        "refused_busy",
        "refused_address",
        "refused_unproven",
        "refused_handshakes",
        "retries",
        "proof_timeouts",
        "frame_timeouts",
        "framing_lost",
    ]
    .iter()
    .filter_map(|n| all.get(*n).filter(|v| **v > 0).map(|v| format!("{n}={v}")))
    .collect();
    out.sort();
    Ok(out.join(" "))
}

/// One attacking stream: the header of a 65,530-byte frame, then 60,000 bytes of it; how the
/// daemon answered. The stream is kept open (dropping it would finish it) until the hold ends.
async fn attack_stream(conn: quinn::Connection, hold: Instant) -> String {
    // The receiving half is dropped: the attacker reads nothing.
    let Ok((mut send, _)) = conn.open_bi().await else {
        return "not opened".into();
    };
    let outcome = attack_write(&mut send).await;
    tokio::time::sleep_until(hold.into()).await;
    outcome
}

async fn attack_write(send: &mut quinn::SendStream) -> String {
    let mut bytes = 65_530u32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&0x0001u16.to_be_bytes());
    bytes.extend_from_slice(&1u32.to_be_bytes());
    bytes.resize(4 + 60_000, 0);
    let sent = tokio::time::timeout(Duration::from_secs(10), send.write_all(&bytes)).await;
    match sent {
        Ok(Ok(())) => "sent".into(),
        Ok(Err(quinn::WriteError::Stopped(code))) => format!("stopped {code}"),
        Ok(Err(e)) => format!("{e}"),
        Err(_) => "blocked".into(),
    }
}

async fn attack(args: &Args, d: &Daemon, pid: u32) -> anyhow::Result<()> {
    let role = match args.role.as_str() {
        "device" => Role::Device,
        "frontend" => Role::Frontend,
        other => anyhow::bail!("--role {other}: device or frontend"),
    };
    let cfg = config(&d.tls_dir(), role)?;
    let eps: Vec<quinn::Endpoint> = (0..args.sources.max(1))
        .map(|i| client::endpoint(SocketAddr::from(([127, 0, 0, i.saturating_add(2)], 0))))
        .collect::<Result<_, _>>()?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss0 = rss_kb(pid);
    let t0 = Instant::now();
    let hold_until = t0 + Duration::from_secs(args.hold);
    let mut conns = Vec::new();
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    let mut streams = tokio::task::JoinSet::new();
    for i in 0..args.conns {
        let ep = &eps[i % eps.len()];
        let connecting = ep.connect_with(cfg.clone(), d.addr, "localhost")?;
        match tokio::time::timeout(Duration::from_secs(10), connecting).await {
            Ok(Ok(conn)) => {
                for _ in 0..args.streams {
                    streams.spawn(attack_stream(conn.clone(), hold_until));
                }
                conns.push(conn);
            }
            Ok(Err(e)) => *outcomes.entry(format!("connect: {e}")).or_default() += 1,
            Err(_) => *outcomes.entry("connect: timed out".into()).or_default() += 1,
        }
    }
    let mut peak = rss_kb(pid);
    // Sample while the streams are written and then held (PINGs only).
    let mut stream_outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    while Instant::now() < hold_until {
        tokio::select! {
            Some(r) = streams.join_next() => {
                let r = r.unwrap_or_else(|e| format!("task: {e}"));
                *stream_outcomes.entry(r).or_default() += 1;
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        peak = peak.max(rss_kb(pid));
    }
    let held = rss_kb(pid);
    let during = counters(d).await?;
    while let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(5), streams.join_next()).await
    {
        let r = r.unwrap_or_else(|e| format!("task: {e}"));
        *stream_outcomes.entry(r).or_default() += 1;
    }
    streams.abort_all();
    for c in &conns {
        let state = match c.close_reason() {
            None => "open".to_string(),
            Some(quinn::ConnectionError::ApplicationClosed(a)) => {
                format!("closed {:#x}", a.error_code.into_inner())
            }
            Some(e) => format!("{e}"),
        };
        *outcomes.entry(state).or_default() += 1;
    }
    println!(
        "attack: {} conns x {} streams as {} from {} address(es), held {} s",
        args.conns,
        args.streams,
        args.role,
        eps.len(),
        args.hold
    );
    println!(
        "  slsd VmRSS: before {:.1} MB, peak {:.1} MB (+{:.1} MB), at the end of the hold {:.1} MB ({:.1} s)",
        rss0 as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak.saturating_sub(rss0) as f64 / 1024.0,
        held as f64 / 1024.0,
        t0.elapsed().as_secs_f64()
    );
    println!("  connections: {outcomes:?}");
    println!("  streams: {stream_outcomes:?}");
    println!("  daemon: {during}");
    for c in &conns {
        c.close(0u32.into(), b"");
    }
    Ok(())
}

/// Opens and drops connections from `ep` until `until` or `max` attempts in all: handshakes
/// completed (the daemon may close them at once) and failed.
async fn flood(
    ep: quinn::Endpoint,
    cfg: quinn::ClientConfig,
    addr: SocketAddr,
    tasks: usize,
    until: Instant,
    max: u64,
) -> (u64, u64) {
    let tried = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (ep, cfg, tried, ok) = (ep.clone(), cfg.clone(), tried.clone(), ok.clone());
        set.spawn(async move {
            while Instant::now() < until && tried.fetch_add(1, Ordering::Relaxed) < max {
                let Ok(connecting) = ep.connect_with(cfg.clone(), addr, "localhost") else {
                    break;
                };
                if let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(5), connecting).await
                {
                    ok.fetch_add(1, Ordering::Relaxed);
                    conn.close(0u32.into(), b"");
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let tried = tried.load(Ordering::Relaxed).min(max);
    let ok = ok.load(Ordering::Relaxed);
    (ok, tried.saturating_sub(ok))
}

async fn honest_and_flood(args: &Args, d: &Daemon) -> anyhow::Result<()> {
    let target = d.target();
    let spec = FleetSpec {
        users: 2_000,
        mix: "dsc_plus=1".parse::<Mix>().map_err(anyhow::Error::msg)?,
        seed: 5,
        connections: 8,
        max_apps: 0,
    };
    let prepared = lrun::prepare(std::slice::from_ref(&target), &spec, Behaviour::default())
        .await
        .context("enrolling the honest fleet")?;
    let plan = Plan {
        model: LoadModel::Open {
            rate: args.rate,
            ramp: None,
            max_in_flight: 10_000,
        },
        mix: vec![(Scenario::DscPlus, 1)],
        duration: Duration::from_secs(args.secs),
        warmup: Duration::from_secs(1),
        progress: false,
    };
    let quiet = prepared.drive(&plan, None).await?;
    let q = &quiet.summary.scenarios[0];
    println!(
        "honest alone: {} logins, p50 {} µs, p99 {} µs",
        q.ok, q.latency_us.p50, q.latency_us.p99
    );
    // The flood runs in a process of its own, as another client would (it still shares the
    // machine's cores with the daemon and the honest client).
    // `--flood-nice N` runs it at that niceness: on one machine its own CPU (the clients' TLS)
    // is taken from the daemon and the honest client, which a flood from another host's
    // cores would not take.
    let mut command = if args.flood_nice > 0 {
        let mut c = tokio::process::Command::new("nice");
        c.arg("-n")
            .arg(args.flood_nice.to_string())
            .arg(std::env::current_exe()?);
        c
    } else {
        tokio::process::Command::new(std::env::current_exe()?)
    };
    let child = command
        .arg("flood-only")
        .arg(format!("--target={}", d.addr))
        .arg(format!("--tls-dir={}", d.tls_dir().display()))
        .arg(format!("--secs={}", args.secs + 2))
        .arg(format!("--flood={}", args.flood))
        .arg(format!("--flood-max={}", args.flood_max))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    // Let the flood build up before measuring.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let loud = prepared.drive(&plan, None).await?;
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .context("the flood process did not end")??;
    let flood_line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let l = &loud.summary.scenarios[0];
    println!(
        "honest during the flood: {} logins, p50 {} µs, p99 {} µs (p99 x{:.2})",
        l.ok,
        l.latency_us.p50,
        l.latency_us.p99,
        l.latency_us.p99 as f64 / q.latency_us.p99.max(1) as f64
    );
    println!("{flood_line}");
    println!("daemon: {}", counters(d).await?);
    prepared.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.what == What::FloodOnly {
        let addr = args.target.context("--target")?;
        let tls_dir = args.tls_dir.clone().context("--tls-dir")?;
        let ep = client::endpoint(SocketAddr::from(([127, 0, 0, 2], 0)))?;
        let cfg = config(&tls_dir, Role::Device)?;
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(args.secs);
        let (ok, failed) = flood(ep, cfg, addr, args.flood, until, args.flood_max).await;
        let took = t0.elapsed().as_secs_f64();
        println!(
            "flood (own process): {} tasks from 127.0.0.2, {ok} handshakes completed ({:.0}/s), {failed} failed or refused, in {took:.1} s",
            args.flood,
            ok as f64 / took
        );
        return Ok(());
    }
    let slsd = find_slsd()?;
    let work = tempfile::Builder::new()
        .prefix("sls-netbounds-")
        .tempdir()?;
    let mut flags: Vec<&str> = [&NO_LIMITS[..], &["--log", "warn"]].concat();
    flags.extend(args.extra.iter().map(String::as_str));
    let mut d = Daemon::start(&slsd, &work.path().join("slsd"), &flags)?;
    let pid = d.pid().context("slsd pid")?;
    println!("slsd {} (pid {pid}) {}", slsd.display(), flags.join(" "));
    let r = match args.what {
        What::Attack => attack(&args, &d, pid).await,
        What::Flood | What::FloodOnly => honest_and_flood(&args, &d).await,
    };
    d.stop(Duration::from_secs(10));
    r
}
