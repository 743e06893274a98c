//! What the benchmark programs share.

/// The resident set of process `pid` in KiB (`VmRSS` in `/proc/<pid>/status`), 0 if it cannot
/// be read.
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU ticks (user and system, in `/proc`'s clock ticks) of each thread of process `pid` whose
/// name starts with `prefix`, by thread id (names are cut to 15 bytes, so `slsd-endpoint-10`
/// reads as `slsd-endpoint-1`), in id order (the order they started); empty if they cannot be
/// read.
pub fn thread_ticks(pid: u32, prefix: &str) -> Vec<(u32, u64)> {
    let mut out: Vec<(u32, u64)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        let name = name.trim();
        if !name.starts_with(prefix) {
            continue;
        }
        // After the name's closing parenthesis: state is field 3, utime 14 and stime 15.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        out.push((tid, tick(11).saturating_add(tick(12))));
    }
    out.sort();
    out
}

/// Each thread's share of the CPU the threads named `prefix…` used between two
/// [`thread_ticks`] readings, e.g. `0.52/0.48`: how evenly the kernel spread the load over
/// slsd's endpoints (it picks a `SO_REUSEPORT` socket by a hash of the client's address and
/// port, so a few client sockets can land unevenly).
pub fn split(before: &[(u32, u64)], after: &[(u32, u64)]) -> String {
    let used: Vec<u64> = after
        .iter()
        .map(|(n, t)| {
            let was = before.iter().find(|(b, _)| b == n).map_or(0, |(_, t)| *t);
            t.saturating_sub(was)
        })
        .collect();
    let total = used.iter().sum::<u64>().max(1) as f64;
    used.iter()
        .map(|u| format!("{:.2}", *u as f64 / total))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_is_each_threads_share_of_what_they_used_between_two_readings() {
        let before = [(7, 100), (8, 40)];
        let after = [(7, 175), (8, 65), (9, 0)];
        assert_eq!(split(&before, &after), "0.75/0.25/0.00");
        // Nothing used: no division by zero.
        assert_eq!(split(&after, &after), "0.00/0.00/0.00");
    }

    #[test]
    fn this_processs_own_threads_are_read_by_name() {
        let me = std::process::id();
        let main = thread_ticks(me, "");
        assert!(!main.is_empty(), "a process has at least one thread");
        assert!(thread_ticks(me, "no-such-thread-name").is_empty());
        assert!(thread_ticks(u32::MAX, "").is_empty(), "no such process");
    }
}
