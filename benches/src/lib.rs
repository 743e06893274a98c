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
/// name starts with `prefix`, by name, in name order; empty if they cannot be read.
pub fn thread_ticks(pid: u32, prefix: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
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
        let ticks = tick(11).saturating_add(tick(12));
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => *t = t.saturating_add(ticks),
            None => out.push((name.to_owned(), ticks)),
        }
    }
    out.sort();
    out
}

/// Each thread's share of the CPU the threads named `prefix…` used between two
/// [`thread_ticks`] readings, e.g. `0.52/0.48`: how evenly the kernel spread the load over
/// slsd's endpoints (it picks a `SO_REUSEPORT` socket by a hash of the client's address and
/// port, so a few client sockets can land unevenly).
pub fn split(before: &[(String, u64)], after: &[(String, u64)]) -> String {
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
        let before = [
            ("slsd-endpoint-0".to_owned(), 100),
            ("slsd-endpoint-1".to_owned(), 40),
        ];
        let after = [
            ("slsd-endpoint-0".to_owned(), 175),
            ("slsd-endpoint-1".to_owned(), 65),
            ("slsd-endpoint-2".to_owned(), 0),
        ];
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
