//! The exposition: every family the daemon serves, with its name, type, help and labels,
//! written through `prometheus-client`'s [`Collector`] at scrape time from the hot path's
//! atomics ([`Metrics`]) and the counts the service reads for it ([`Readings`]).
//!
//! Counters are named without `_total` here: the OpenMetrics encoder appends it to their
//! samples. Units are in the names (`_seconds`, `_bytes`, with a `# UNIT` line).

use std::fmt::Error;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::histogram::Reading;
use super::{process, Metrics, ROLES, VERDICTS, VERDICT_KINDS};
use MetricType::{Counter as C, Gauge as G};

/// What the service reads for a scrape, beside the hot path's own counts.
#[derive(Debug, Default, Clone)]
pub struct Readings {
    /// The core's counts by name (its `stats()`, the same as the admin `GetStats` returns).
    pub core: Vec<(&'static str, u64)>,
    /// The admission's counts by name (live, unproven, handshakes, partial bytes, events).
    pub admission: Vec<(&'static str, u64)>,
    /// The store's readiness and failures.
    pub store: StoreReadings,
    /// Requests being handled right now.
    pub in_flight: u64,
    /// `Await`s parked, waiting for a decision.
    pub awaits_parked: u64,
}

/// The store's readiness and failures.
#[derive(Debug, Default, Clone, Copy)]
pub struct StoreReadings {
    /// Whether changes are accepted (the embedded store: journal writes succeed; the Redis
    /// store: connected at start).
    pub ready: bool,
    /// Journal writes retried after a failure.
    pub retries: u64,
    /// Spells of failing journal writes.
    pub unhealthy: u64,
    /// With a Redis store: what this node sent it.
    pub redis: Option<RedisReadings>,
}

/// What a node sent to its Redis Cluster (see `sls_redis::RedisStore::commands`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RedisReadings {
    /// Commands sent (one round trip each), by what they were for.
    pub commands: [(&'static str, u64); 8],
    /// Compare-and-sets refused because the node's cached value of the user was stale.
    pub stale_guesses: u64,
    /// Compare-and-sets lost to another node's write of a value read just before.
    pub conflicts: u64,
    /// Cluster connections the watchdog rebuilt (`sls_redis::health`).
    pub rebuilds: u64,
}

/// The families read from a named count of [`Readings::core`] or [`Readings::admission`]:
/// the count's name, the family, its type, its help, and a label if the family has several.
struct Named {
    from: &'static str,
    family: &'static str,
    kind: MetricType,
    help: &'static str,
    label: Option<(&'static str, &'static str)>,
}

const fn named(
    from: &'static str,
    family: &'static str,
    kind: MetricType,
    help: &'static str,
) -> Named {
    Named {
        from,
        family,
        kind,
        help,
        label: None,
    }
}

const fn refused(from: &'static str, reason: &'static str) -> Named {
    Named {
        from,
        family: "sls_connections_refused",
        kind: MetricType::Counter,
        help: "Connections refused for capacity, by reason: busy (max_connections), address \
               (per address), unproven (IB Key apps not yet proven), handshakes (in progress), \
               handshake_rate (per address).",
        label: Some(("reason", reason)),
    }
}

/// The core's counts. Grouped by family, in the order they are written.
const CORE: [Named; 13] = [
    named("users", "sls_users", G, "Enrolled users."),
    named(
        "open_transactions",
        "sls_open_challenges",
        G,
        "Challenges issued and neither answered nor expired yet (open transactions).",
    ),
    named("accepted", "sls_accepted", C, "Verifications accepted."),
    named(
        "failures_evaluated",
        "sls_failures_evaluated",
        C,
        "Failures counted towards a lockout: wrong or malformed answers, password failures.",
    ),
    named("lockouts", "sls_lockouts", C, "Users locked out."),
    named(
        "refused_locked",
        "sls_refused_locked",
        C,
        "Requests refused because the user was locked.",
    ),
    named("replays", "sls_replays", C, "Answers refused as replays."),
    named(
        "rate_limited",
        "sls_rate_limited",
        C,
        "Requests refused by a rate limit (per client address or per user).",
    ),
    named(
        "expired",
        "sls_expired",
        C,
        "Answers to expired challenges.",
    ),
    named("pushes", "sls_pushes", C, "Pushes sent to IB Key apps."),
    named(
        "push_capped",
        "sls_push_capped",
        C,
        "Pushes refused by the fatigue cap (a fallback challenge given instead).",
    ),
    named(
        "lockouts_recent_window",
        "sls_lockouts_recent",
        G,
        "Lockouts across users within mass_lockout_window.",
    ),
    named(
        "mass_lockout_alert",
        "sls_mass_lockout_alert",
        G,
        "1 while the recent lockouts reach mass_lockout_threshold (an attack or a frontend \
         bug), else 0.",
    ),
];

/// The admission's counts. The refusals by reason are one family, kept together.
const ADMISSION: [Named; 13] = [
    named(
        "connections_live",
        "sls_connections_admitted",
        G,
        "Connections holding an admission slot (max_connections bounds them).",
    ),
    named(
        "connections_unproven",
        "sls_connections_unproven",
        G,
        "IB Key app connections that have not proven a key yet.",
    ),
    named(
        "handshakes",
        "sls_handshakes_in_progress",
        G,
        "QUIC handshakes in progress.",
    ),
    named(
        "partial_frame_bytes",
        "sls_partial_frame_bytes",
        G,
        "Bytes held in frames not yet complete, across streams.",
    ),
    refused("refused_busy", "busy"),
    refused("refused_address", "address"),
    refused("refused_unproven", "unproven"),
    refused("refused_handshakes", "handshakes"),
    refused("refused_handshake_rate", "handshake_rate"),
    named(
        "retries",
        "sls_stateless_retries",
        C,
        "QUIC stateless retries sent (address validation under load).",
    ),
    named(
        "proof_timeouts",
        "sls_proof_timeouts",
        C,
        "IB Key app connections closed for proving no key in time.",
    ),
    named(
        "frame_timeouts",
        "sls_frame_timeouts",
        C,
        "Streams reset for a frame not completed in time.",
    ),
    named(
        "framing_lost",
        "sls_framing_lost",
        C,
        "Streams whose framing was lost (no more of them read).",
    ),
];

/// Reads one of a slot's two histograms.
type ReadTimings = fn(&super::Timings) -> Reading;

/// The daemon's version, for `sls_build_info`.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The collector of every `sls_` family.
pub struct Daemon {
    metrics: Arc<Metrics>,
    read: Box<dyn Fn() -> Readings + Send + Sync>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").finish_non_exhaustive()
    }
}

/// The registry of the daemon's families and the process's, built once at startup; `read`
/// is called once per scrape.
pub fn registry(
    metrics: Arc<Metrics>,
    read: impl Fn() -> Readings + Send + Sync + 'static,
) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(Daemon {
        metrics,
        read: Box::new(read),
    }));
    r.register_collector(Box::new(process::Process));
    r
}

/// The OpenMetrics text of `registry` (ends with `# EOF`).
///
/// # Errors
/// A collector failed to write (not expected: writing to a `String`).
pub fn render(registry: &Registry) -> Result<String, Error> {
    let mut out = String::with_capacity(16 << 10);
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

/// One family's descriptor.
fn family<'a>(
    e: &'a mut DescriptorEncoder,
    name: &'a str,
    help: &str,
    unit: Option<&'a Unit>,
    kind: MetricType,
) -> Result<MetricEncoder<'a>, Error> {
    e.encode_descriptor(name, help, unit, kind)
}

fn counter(m: &mut MetricEncoder, v: u64) -> Result<(), Error> {
    m.encode_counter::<NoLabelSet, u64, u64>(&v, None)
}

fn histogram(m: &mut MetricEncoder, r: &Reading) -> Result<(), Error> {
    m.encode_histogram::<NoLabelSet>(r.sum_seconds, r.count, &r.buckets, None)
}

/// A family with one sample, no labels.
fn single(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    v: u64,
) -> Result<(), Error> {
    let mut m = family(e, name, help, None, kind)?;
    match kind {
        MetricType::Counter => counter(&mut m, v),
        _ => m.encode_gauge(&v),
    }
}

/// The families of `table` from the counts `values` (a count missing from them reads 0).
fn write_named(
    e: &mut DescriptorEncoder,
    table: &[Named],
    values: &[(&'static str, u64)],
) -> Result<(), Error> {
    let value = |from: &str| {
        values
            .iter()
            .find(|(n, _)| *n == from)
            .map_or(0, |(_, v)| *v)
    };
    let mut i = 0;
    while let Some(first) = table.get(i) {
        let Some((k, _)) = first.label else {
            single(e, first.family, first.help, first.kind, value(first.from))?;
            i += 1;
            continue;
        };
        let mut m = family(e, first.family, first.help, None, first.kind)?;
        while let Some(n) = table.get(i).filter(|n| n.family == first.family) {
            let label = [(k, n.label.map_or("", |l| l.1))];
            counter(&mut m.encode_family(&label)?, value(n.from))?;
            i += 1;
        }
    }
    Ok(())
}

impl Daemon {
    /// The families of the hot path's own counts.
    fn write_requests(&self, e: &mut DescriptorEncoder) -> Result<(), Error> {
        let m = &self.metrics;
        let counts: Vec<Vec<u64>> = (0..m.types.len())
            .map(|t| {
                (0..VERDICTS.len())
                    .map(|v| m.timings(t, v).map_or(0, |s| s.handling.count()))
                    .collect()
            })
            .collect();
        let mut f = family(
            e,
            "sls_requests",
            "Requests answered, by message type.",
            None,
            MetricType::Counter,
        )?;
        for (t, name) in m.types.iter().enumerate() {
            let n = counts[t].iter().sum();
            counter(&mut f.encode_family(&[("type", *name)])?, n)?;
        }
        let mut f = family(
            e,
            "sls_verdicts",
            "Verdicts sent, by kind.",
            None,
            MetricType::Counter,
        )?;
        for (v, name) in VERDICTS.iter().enumerate().take(VERDICT_KINDS) {
            let n = counts.iter().map(|c| c[v]).sum();
            counter(&mut f.encode_family(&[("verdict", *name)])?, n)?;
        }
        let timings: [(&str, &str, ReadTimings); 2] = [
            (
                "sls_request_duration",
                "Server-side handling time of a request, from its decoding to its answer (not \
                 the wait for durability, see sls_durable_wait_seconds), by type and verdict \
                 (none: an answer without a verdict; error: an Error frame).",
                |s| s.handling.read(),
            ),
            (
                "sls_request_queue_wait",
                "Time a request waited between the read that brought it in and the start of \
                 its handling (behind the requests before it in the same read), by type and \
                 verdict.",
                |s| s.queued.read(),
            ),
        ];
        for (name, help, read) in timings {
            let mut f = family(e, name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
            for (t, tname) in m.types.iter().enumerate() {
                for (v, vname) in VERDICTS.iter().enumerate() {
                    // Only the pairs that happened: most types never get most verdicts.
                    let Some(s) = m.timings(t, v).filter(|_| counts[t][v] > 0) else {
                        continue;
                    };
                    let labels = [("type", *tname), ("verdict", *vname)];
                    histogram(&mut f.encode_family(&labels)?, &read(s))?;
                }
            }
        }
        histogram(
            &mut family(
                e,
                "sls_durable_wait",
                "Time the answers of one read that changed state waited for their changes to be \
                 durable (the journal's group fsync, or the Redis replicas).",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?,
            &m.durable.read(),
        )
    }

    /// The families of the connections, frames and the bus.
    fn write_transport(&self, e: &mut DescriptorEncoder) -> Result<(), Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.metrics;
        let mut f = family(
            e,
            "sls_connections",
            "Open connections, by role.",
            None,
            MetricType::Gauge,
        )?;
        for (i, role) in ROLES.iter().enumerate() {
            let n = m.connections[i].load(Relaxed);
            f.encode_family(&[("role", role.name())])?
                .encode_gauge(&n)?;
        }
        let mut f = family(
            e,
            "sls_endpoint_connections_accepted",
            "Connections whose handshake completed, by the QUIC endpoint that took them \
             (--endpoints; the kernel spreads clients over the endpoints by address and port).",
            None,
            MetricType::Counter,
        )?;
        for (i, n) in m.accepted.iter().enumerate() {
            let endpoint = i.to_string();
            counter(
                &mut f.encode_family(&[("endpoint", endpoint.as_str())])?,
                n.load(Relaxed),
            )?;
        }
        let mut f = family(
            e,
            "sls_frame_errors",
            "Frames refused, by status code.",
            None,
            MetricType::Counter,
        )?;
        let errors: Vec<(u16, u64)> = m
            .frame_errors
            .lock()
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        for (status, n) in errors {
            let code = format!("0x{status:04x}");
            counter(&mut f.encode_family(&[("status", code.as_str())])?, n)?;
        }
        let singles = [
            (
                "sls_read_batches",
                "Reads whose frames were handled together.",
                &m.batches,
            ),
            (
                "sls_batched_frames",
                "Frames handled in those reads.",
                &m.batched_frames,
            ),
            (
                "sls_bus_dropped",
                "Notes to the other nodes dropped because the bus's queue was full.",
                &m.bus_dropped,
            ),
        ];
        for (name, help, n) in singles {
            single(e, name, help, MetricType::Counter, n.load(Relaxed))?;
        }
        Ok(())
    }
}

impl Collector for Daemon {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), Error> {
        let r = (self.read)();
        family(
            &mut e,
            "sls_build",
            "The daemon's version.",
            None,
            MetricType::Info,
        )?
        .encode_info(&[("version", VERSION)])?;
        self.write_requests(&mut e)?;
        write_named(&mut e, &CORE, &r.core)?;
        write_named(&mut e, &ADMISSION, &r.admission)?;
        self.write_transport(&mut e)?;
        let gauges = [
            (
                "sls_store_ready",
                "1 while the store accepts changes (the embedded store: journal writes \
                 succeed), 0 while changes are answered UNAVAILABLE.",
                u64::from(r.store.ready),
            ),
            (
                "sls_requests_in_flight",
                "Requests being handled right now.",
                r.in_flight,
            ),
            (
                "sls_awaits_parked",
                "Await requests parked, waiting for a push decision.",
                r.awaits_parked,
            ),
        ];
        for (name, help, v) in gauges {
            single(&mut e, name, help, MetricType::Gauge, v)?;
        }
        single(
            &mut e,
            "sls_store_retries",
            "Journal writes retried after a failure (embedded store).",
            MetricType::Counter,
            r.store.retries,
        )?;
        single(
            &mut e,
            "sls_store_unhealthy",
            "Spells of failing journal writes (embedded store).",
            MetricType::Counter,
            r.store.unhealthy,
        )?;
        match &r.store.redis {
            Some(redis) => write_redis(&mut e, redis),
            None => Ok(()),
        }
    }
}

/// The Redis store's families (only with one).
fn write_redis(e: &mut DescriptorEncoder, r: &RedisReadings) -> Result<(), Error> {
    let mut m = family(
        e,
        "sls_redis_commands",
        "Commands sent to the Redis Cluster (one round trip each), by what for: read (a \
         user's value), txn_read (a transaction with its user's value), cas, cas_bind (a \
         begin's write), cas_settle (an answer's write), wait (a WAIT round: a mark and a \
         WAIT to every master), token (the per-user rate limit), other.",
        None,
        MetricType::Counter,
    )?;
    for (command, n) in r.commands {
        counter(&mut m.encode_family(&[("command", command)])?, n)?;
    }
    single(
        e,
        "sls_redis_stale_guesses",
        "Writes refused because this node's cached value of the user was stale (another node \
         wrote since); each cost a round trip.",
        MetricType::Counter,
        r.stale_guesses,
    )?;
    single(
        e,
        "sls_redis_conflicts",
        "Writes lost to another node's write of the same user between a read and the write.",
        MetricType::Counter,
        r.conflicts,
    )?;
    single(
        e,
        "sls_redis_rebuilds",
        "Cluster connections rebuilt because probes through them kept failing while the \
         shard's master answered a fresh connection (a connection that stopped carrying \
         requests to a master, e.g. after a failover it did not follow).",
        MetricType::Counter,
        r.rebuilds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_count_of_the_core_and_the_admission_has_a_family() {
        // The names the service hands over: a count added there and not here would vanish.
        let admission = crate::service::limits::Admission::new(Default::default());
        for (name, _) in admission.counters() {
            assert!(ADMISSION.iter().any(|n| n.from == name), "{name}");
        }
        let core_names = [
            "users",
            "open_transactions",
            "accepted",
            "failures_evaluated",
            "lockouts",
            "refused_locked",
            "replays",
            "rate_limited",
            "expired",
            "pushes",
            "push_capped",
            "lockouts_recent_window",
            "mass_lockout_alert",
        ];
        for name in core_names {
            assert!(CORE.iter().any(|n| n.from == name), "{name}");
        }
    }
}
