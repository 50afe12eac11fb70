//! The bench's table rows and units.

use super::*;

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

pub(crate) fn per(total: u64, n: usize) -> String {
    format!("{:.2}", total as f64 / n as f64)
}

pub(crate) fn sum(requests: &BTreeMap<(String, String), u64>, verbs: &[&str]) -> u64 {
    requests
        .iter()
        .filter(|((v, _), _)| verbs.contains(&v.as_str()))
        .map(|(_, c)| c)
        .sum()
}

pub(crate) const WRITES: &[&str] = &["apply", "patch", "create", "update", "delete"];
pub(crate) const READS: &[&str] = &["get", "list"];

/// The least-squares slope of the passes' RSS (total), in MiB a pass: a rising trend is positive.
pub(crate) fn slope(rounds: &[ChurnRound]) -> f64 {
    let n = rounds.len() as f64;
    if rounds.len() < 2 {
        return 0.0;
    }
    let xs: Vec<f64> = (0..rounds.len()).map(|i| i as f64).collect();
    let ys: Vec<f64> = rounds
        .iter()
        .map(|r| r.vm_rss_kib as f64 / 1024.0)
        .collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    sxy / sxx
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The CPU seconds (user + system) of one /proc/<pid>/stat line, with those of the children the process has
/// waited for when `children` (clock ticks of 1/100 s, as on Linux x86-64 and arm64).
pub(crate) fn stat_cpu_seconds(stat: &str, children: bool) -> Option<f64> {
    // After the command's closing parenthesis: the state (field 3), then utime and stime (fields 14 and 15),
    // cutime and cstime (16 and 17).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let count = if children { 4 } else { 2 };
    let mut ticks = 0.0;
    for field in fields.get(11..11 + count)? {
        ticks += field.parse::<f64>().ok()?;
    }
    Some(ticks / 100.0)
}

/// CPU seconds (user + system) used so far by the API server, etcd and this process (the operator and the
/// bench's own clients), from /proc/<pid>/stat (clock ticks of 1/100 s, as on Linux x86-64 and arm64).
pub(crate) fn cpu_seconds() -> BTreeMap<&'static str, f64> {
    let mut cpu = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let name = match stat
            .split_once(" (")
            .and_then(|(_, r)| r.split_once(')'))
            .map(|(c, _)| c)
        {
            Some("kube-apiserver") => "kube-apiserver",
            Some("etcd") => "etcd",
            // The peer phase's two processes (a process name is cut at 15 bytes).
            Some("flux-operator") => "flux-operator",
            Some("vworkspace-oper") => "vworkspace-operator",
            _ => continue,
        };
        *cpu.entry(name).or_insert(0.0) += stat_cpu_seconds(&stat, false).unwrap_or_default();
    }
    // The whole machine (user, nice, system, irq, softirq, steal; idle and iowait apart): shows whether the run
    // used both cores and how much went to processes not listed (git, the kernel's network processing).
    if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
        let fields: Vec<f64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|x| x.parse().ok())
            .collect();
        if fields.len() > 4 {
            let idle = fields[3] + fields[4];
            cpu.insert("machine busy", (fields.iter().sum::<f64>() - idle) / 100.0);
            cpu.insert("machine idle", idle / 100.0);
        }
    }
    if let Some(own) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_cpu_seconds(&stat, false))
    {
        cpu.insert("this process", own);
    }
    cpu
}

pub(crate) fn cpu_diff(
    after: &BTreeMap<&'static str, f64>,
    before: &BTreeMap<&'static str, f64>,
) -> String {
    after
        .iter()
        .map(|(k, v)| format!("{k} {:.1}", v - before.get(k).copied().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn raw_rows(label: &str, runs: &[RawRun]) {
    if runs.is_empty() {
        return;
    }
    println!(
        "| {label} ({}) | {} | |",
        if runs.len() > 1 {
            "before / after the operator"
        } else {
            "once"
        },
        runs.iter()
            .map(|r| secs(r.wall))
            .collect::<Vec<_>>()
            .join(" / ")
    );
    for r in runs {
        println!("| … CPU seconds: {} | | |", r.cpu);
        println!(
            "| … mean answer time | {} | |",
            r.latencies
                .iter()
                .map(|(k, d)| format!(
                    "{} {} {:.1} ms",
                    k.0,
                    k.1,
                    d.as_secs_f64() * 1000.0 / r.requests.get(k).copied().unwrap_or(1) as f64
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

pub(crate) fn op_rows(label: &str, op: &OperatorRun, references: &[(&[RawRun], &str)], n: usize) {
    let ratios: Vec<String> = references
        .iter()
        .filter_map(|(runs, name)| {
            let fastest = runs.iter().map(|r| r.wall).min()?;
            Some(format!(
                "{:.2}× the faster {name}",
                op.wall.as_secs_f64() / fastest.as_secs_f64()
            ))
        })
        .collect();
    let ratio = if ratios.is_empty() {
        String::new()
    } else {
        format!(" ({})", ratios.join("; "))
    };
    println!("| {label} | {}{ratio} | ≤ 2× |", secs(op.wall));
    println!("| … CPU seconds: {} | | |", op.cpu);
    println!(
        "| … API writes per intent (every mutating request of the operator's client) | {} | |",
        per(sum(&op.requests, WRITES), n)
    );
    println!(
        "| … counted by the operator itself (Counters::writes: {}) | {} | |",
        op.own_writes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        per(op.own_writes.values().sum(), n)
    );
    println!(
        "| … API reads (get + list) per intent | {} | |",
        per(sum(&op.requests, READS), n)
    );
    println!(
        "| … reconciles per intent (failed, retried: {}); mean reconcile time | {}; {:.1} ms | |",
        op.reconcile_errors,
        per(op.reconciles, n),
        op.reconcile_mean.as_secs_f64() * 1000.0
    );
}
