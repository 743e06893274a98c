//! The latency regime (issue 13, item 4): the raw path's open loop ([`raw_open`]) at one
//! request rate against the bare echo, then against slsd, on the same shape (8 connections, at
//! most 256 requests in flight each): the latency of each request (an echo's `Answer`; a
//! DSC+ `Begin` or `Answer`) from its due time to its reply. The rate is 25% of regime 1's
//! requests/s, or `--latency-rate`; `--latency-only` runs this regime alone, `--latency-runs`
//! times alternately (echo, sls, echo, sls…), and prints each pair and the medians.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sls_client::ClientTls;
use sls_loadgen::daemon::{Daemon, NO_LIMITS, ONE_ADDRESS};
use sls_loadgen::fleet::Mix;
use sls_loadgen::raw::{self, Shape, Stats};
use sls_loadgen::raw_open::{self, Open};
use sls_loadgen::run::{RunResult, Target};
use sls_protocol::{Role, ALPN_FRONTEND};

/// The share of regime 1's requests/s the regime runs at.
pub const SHARE: f64 = 0.25;

/// slsd's flags in the runner's regimes: no rate limits, one simulated user per address.
pub fn sls_flags() -> Vec<&'static str> {
    [&NO_LIMITS[..], &ONE_ADDRESS[..], &["--log", "warn"]].concat()
}

/// What an open loop measured, per request, µs.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    /// Requests due in the window.
    pub scheduled: u64,
    /// Of those, the ones that waited for a free slot.
    pub late: u64,
    /// Of those, the ones without a reply by the drain deadline.
    pub unanswered: u64,
    /// Replies the client did not expect.
    pub unexpected: u64,
    /// p99 of how late the load generator wrote the requests after their due time, µs.
    pub lag_p99: u64,
}

impl Measured {
    fn of(s: &Stats) -> Measured {
        let (h, lag) = (&s.latency_us, &s.send_lag_us);
        Measured {
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            scheduled: s.scheduled,
            late: s.late,
            unanswered: s.unanswered,
            unexpected: s.unexpected.iter().map(|(_, n)| n).sum(),
            lag_p99: lag.value_at_quantile(0.99),
        }
    }

    fn of_run(r: &RunResult) -> Measured {
        let run = &r.summary.run;
        let n = |k: &str| run[k].as_u64().unwrap_or(0);
        let l = &r.summary.overall.latency_us;
        Measured {
            p50: l.p50,
            p99: l.p99,
            p999: l.p999,
            scheduled: n("scheduled"),
            late: n("late"),
            unanswered: n("unanswered"),
            unexpected: r.unexpected.saturating_sub(n("unanswered")),
            lag_p99: run["send_lag_us"]["p99"].as_u64().unwrap_or(0),
        }
    }

    /// `p50 / p99 / p99.9 (… due, … late, … unanswered, written ≤ … µs late at p99)`.
    pub fn cell(&self) -> String {
        format!(
            "{} / {} / {} ({} due, {} late, {} unanswered, {} unexpected; written p99 {} µs after due)",
            self.p50,
            self.p99,
            self.p999,
            self.scheduled,
            self.late,
            self.unanswered,
            self.unexpected,
            self.lag_p99
        )
    }
}

/// p99(sls) / p99(echo).
pub fn ratio(sls: &Measured, echo: &Measured) -> f64 {
    sls.p99 as f64 / echo.p99.max(1) as f64
}

/// Regime 1's shape: 8 connections × 256, one client thread, a second of warm-up.
fn shape(secs: u64, agent: &str) -> Shape {
    Shape {
        agent: agent.into(),
        ..Shape::closed(8, 256, 1).measuring(Duration::from_secs(1), Duration::from_secs(secs))
    }
}

/// The bare echo's open loop `open` for `secs`.
pub async fn echo(echo: &Daemon, open: &Open, secs: u64) -> anyhow::Result<Measured> {
    let config =
        ClientTls::from_dir(&echo.tls_dir(), Role::Frontend)?.quinn_config(ALPN_FRONTEND)?;
    let (addr, shape, open) = (echo.addr, shape(secs, "e2e-echo-open"), open.clone());
    let stats = tokio::task::spawn_blocking(move || {
        raw_open::run(
            sls_client::pipeline::Peer::new(addr, "localhost"),
            config,
            &shape,
            &open,
            |_| raw::Echo::new(),
        )
    })
    .await??;
    Ok(Measured::of(&stats))
}

/// slsd's open loop `open` of DSC+ requests for `secs`, on a fleet of its own (20,000 users of
/// `seed`).
pub async fn sls(target: &Target, open: &Open, secs: u64, seed: u64) -> anyhow::Result<Measured> {
    let r = sls_loadgen::raw_dsc::run(
        target,
        20_000,
        dsc_plus()?,
        seed,
        &shape(secs, "e2e-sls-open"),
        Some(open),
        sls_loadgen::raw_dsc::Answers::Right,
        None,
    )
    .await?;
    Ok(Measured::of_run(&r))
}

fn dsc_plus() -> anyhow::Result<Mix> {
    "dsc_plus=1".parse::<Mix>().map_err(anyhow::Error::msg)
}

/// Regime 1 (8 × 256 DSC+ logins, closed loop) on `target` for `secs`: its requests/s.
pub async fn regime_1(target: &Target, secs: u64, seed: u64) -> anyhow::Result<f64> {
    let shape = shape(secs, "e2e-regime-1");
    let r = sls_loadgen::raw_dsc::run(
        target,
        20_000,
        dsc_plus()?,
        seed,
        &shape,
        None,
        sls_loadgen::raw_dsc::Answers::Right,
        None,
    )
    .await?;
    r.summary.run["client_requests_per_s"]
        .as_f64()
        .context("regime 1: no requests/s")
}

/// What `--latency-only` runs.
pub struct Opts {
    /// Requests/s [default: 25% of regime 1's, measured first].
    pub rate: Option<f64>,
    pub tick: Duration,
    pub secs: u64,
    /// Echo-then-sls pairs.
    pub runs: usize,
    /// slsd's `--threads`.
    pub sls_threads: Option<usize>,
}

/// `--latency-only`: the echo and slsd started here; the rate given, or 25% of regime 1's
/// (measured first); `runs` pairs of open loops, echo then sls; a markdown table of each pair
/// and the medians.
pub async fn only(exe: &Path, slsd: &Path, work: &Path, o: &Opts) -> anyhow::Result<String> {
    let threads = o.sls_threads.map(|t| t.to_string());
    let mut flags = sls_flags();
    if let Some(t) = &threads {
        flags.extend(["--threads", t.as_str()]);
    }
    let mut echo_d = crate::echo::spawn(exe, &work.join("echo"))?;
    let mut sls_d = Daemon::start(slsd, &work.join("slsd"), &flags)?;
    let result = pairs(&echo_d, &sls_d.target(), o).await;
    sls_d.stop(Duration::from_secs(10));
    echo_d.stop(Duration::from_secs(10));
    result
}

async fn pairs(echo_d: &Daemon, target: &Target, o: &Opts) -> anyhow::Result<String> {
    let (secs, tick) = (o.secs, o.tick);
    let mut md = String::new();
    let rate = match o.rate {
        Some(r) => r,
        None => {
            let r1 = regime_1(target, secs, 300).await?;
            md.push_str(&format!(
                "regime 1 (8 x 256 DSC+, closed loop): {r1:.0} requests/s; {:.0}% of it: {:.0} requests/s\n\n",
                SHARE * 100.0,
                r1 * SHARE
            ));
            r1 * SHARE
        }
    };
    let open = Open {
        tick,
        ..Open::at(rate)
    };
    open.check()?;
    md.push_str(&format!(
        "open loops of {secs} s (after 1 s of warm-up), 8 connections x 256 slots, ticks of {} µs, slsd --threads {}; latency of each request from its due time\n\n",
        tick.as_micros(),
        o.sls_threads.map_or("default".to_owned(), |t| t.to_string()),
    ));
    md.push_str(
        "| run | rate req/s | echo p50 / p99 / p99.9 µs | sls p50 / p99 / p99.9 µs | p99 sls / echo |\n|---|---|---|---|---|\n",
    );
    let mut got = Vec::new();
    for i in 0..o.runs.clamp(1, 100) {
        let e = echo(echo_d, &open, secs).await?;
        let s = sls(target, &open, secs, 301 + i as u64).await?;
        eprintln!(
            "latency run {}: echo {} | sls {} | ratio {:.2}",
            i + 1,
            e.cell(),
            s.cell(),
            ratio(&s, &e)
        );
        md.push_str(&format!(
            "| {} | {rate:.0} | {} | {} | {:.2} |\n",
            i + 1,
            e.cell(),
            s.cell(),
            ratio(&s, &e)
        ));
        got.push((e, s));
    }
    let med = |f: &dyn Fn(&(Measured, Measured)) -> f64| {
        let mut v: Vec<f64> = got.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    md.push_str(&format!(
        "| median | {rate:.0} | p50 {:.0}, p99 {:.0} | p50 {:.0}, p99 {:.0} | {:.2} |\n",
        med(&|p| p.0.p50 as f64),
        med(&|p| p.0.p99 as f64),
        med(&|p| p.1.p50 as f64),
        med(&|p| p.1.p99 as f64),
        med(&|p| ratio(&p.1, &p.0)),
    ));
    Ok(md)
}
