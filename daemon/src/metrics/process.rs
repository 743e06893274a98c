//! The process's own families, by the names every Prometheus client uses:
//! `process_resident_memory_bytes`, `process_cpu_seconds_total` and
//! `process_start_time_seconds`, read from `/proc/self` at scrape time (Linux; elsewhere they
//! are left out).

use std::fmt::Error;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// The process's memory, CPU time and start.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Resident set size, in bytes.
    pub resident_bytes: u64,
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// When the process started, in seconds since the Unix epoch.
    pub start_time_seconds: f64,
}

/// Reads this process's usage; `None` where `/proc` is not there or not as Linux has it.
pub fn read() -> Option<Usage> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    parse(
        &statm,
        &stat,
        &boot,
        rustix::param::page_size() as u64,
        rustix::param::clock_ticks_per_second(),
    )
}

/// The usage from the texts of `/proc/self/statm`, `/proc/self/stat` and `/proc/stat`, with
/// the page size and the clock ticks per second.
fn parse(statm: &str, stat: &str, boot: &str, page: u64, ticks: u64) -> Option<Usage> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14, 15 (utime, stime) and 22 (starttime), numbered from 1 with `pid` and `comm`
    // first: 11, 12 and 19 after the command name (state is the first there).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let start_ticks: u64 = fields.get(19)?.parse().ok()?;
    let btime: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let ticks = ticks.max(1) as f64;
    Some(Usage {
        resident_bytes: pages.saturating_mul(page),
        cpu_seconds: (utime + stime) as f64 / ticks,
        start_time_seconds: btime as f64 + start_ticks as f64 / ticks,
    })
}

/// The collector of the `process_` families.
#[derive(Debug)]
pub struct Process;

impl Collector for Process {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), Error> {
        let Some(u) = read() else { return Ok(()) };
        e.encode_descriptor(
            "process_resident_memory",
            "Resident memory size in bytes.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?
        .encode_gauge(&u.resident_bytes)?;
        e.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, f64, f64>(&u.cpu_seconds, None)?;
        e.encode_descriptor(
            "process_start_time",
            "Start time of the process since unix epoch in seconds.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?
        .encode_gauge(&u.start_time_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_are_read_past_a_command_name_with_spaces() {
        let stat = "4242 (sl sd) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 50 0 0 20 0 \
                    3 0 123400 1000000 2500 18446744073709551615";
        let u = parse(
            "5000 2500 300 100 0 900 0\n",
            stat,
            "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n",
            4096,
            100,
        )
        .unwrap();
        assert_eq!(u.resident_bytes, 2500 * 4096);
        assert!((u.cpu_seconds - 2.0).abs() < 1e-9);
        assert!((u.start_time_seconds - 1_700_001_234.0).abs() < 1e-6);
    }

    #[test]
    fn this_process_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let u = read().expect("/proc/self on Linux");
            assert!(u.resident_bytes > 0);
            assert!(u.start_time_seconds > 1e9);
        }
    }
}
