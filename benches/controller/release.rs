//! The release binary as a subprocess: its peak RSS with many intents (4), and over churn rounds (5).

use super::*;
// ---------------------------------------------------------------------------------------------------------
// 4. Peak RSS of the release binary.

pub(crate) struct RssRun {
    pub(crate) wall: Duration,
    /// The first Git view sync (fetch, verify and index the fleet's commit), from the operator's histogram.
    pub(crate) first_sync: Duration,
    /// One signed commit changing every intent: from applying the changed intents to all Ready at the new
    /// generation, the view's sync of that commit, the peak RSS after it (`None` with RSS_UPDATE=0).
    pub(crate) update: Option<(Duration, Duration, u64)>,
    pub(crate) vm_hwm_kib: u64,
    pub(crate) vm_rss_kib: u64,
    pub(crate) rss_anon_kib: u64,
    pub(crate) rss_file_kib: u64,
    pub(crate) threads: u64,
    /// The operator's CPU seconds (its `git` processes included): creating all, then the update (0 without).
    pub(crate) cpu_secs: (f64, f64),
    /// From its /metrics at the end: failed reconciles (any controller), ApplicationInstance reconciles.
    pub(crate) reconcile_errors: f64,
    pub(crate) reconciles: f64,
}

/// CPU seconds (user + system) of a process and of the children it has waited for (its `git` processes).
pub(crate) fn proc_cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_cpu_seconds(&stat, true))
        .unwrap_or_default()
}

/// A number from /proc/<pid>/status (`VmHWM:  1234 kB` → 1234).
pub(crate) fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let v = l.strip_prefix(field)?.strip_prefix(':')?.trim();
            v.trim_end_matches("kB").trim().parse().ok()
        })
        .unwrap_or_default()
}

/// `vworkspace-operator run` (the release binary) as a subprocess in its own process group, on one cluster's
/// repo, with its metrics on a known port.
pub(crate) struct ReleaseOperator {
    pub(crate) child: tokio::process::Child,
    pub(crate) pid: u32,
    pub(crate) metrics_addr: String,
}

impl ReleaseOperator {
    /// Started, and given 3 s to come up (its watches listed, its repo fetched and verified).
    pub(crate) async fn start(fleet: &Fleet, concurrency: usize) -> Self {
        let operator = Self::spawn(fleet, concurrency);
        tokio::time::sleep(Duration::from_secs(3)).await;
        operator
    }

    /// Started, without waiting.
    pub(crate) fn spawn(fleet: &Fleet, concurrency: usize) -> Self {
        let (tmp, cluster, remote, signer) = (
            fleet.tmp.path(),
            &fleet.cluster,
            &fleet.remote,
            &fleet.signer,
        );
        let policy = tmp.join("policy.yaml");
        std::fs::write(&policy, policy_yaml(&[signer], "range")).expect("policy");
        let log = std::fs::File::create(tmp.join("operator.log")).expect("log");
        let metrics_addr = format!("127.0.0.1:{}", testbed::free_port());
        // OPERATOR_WRAPPER (e.g. "heaptrack -o /tmp/op") runs the binary under a profiler; the RSS figures are
        // then the wrapper's, not the operator's.
        let wrapper = std::env::var("OPERATOR_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let binary = env!("CARGO_BIN_EXE_vworkspace-operator");
        drop_cached_code(binary);
        let mut command = match words.next() {
            Some(program) => {
                let mut c = tokio::process::Command::new(program);
                c.args(words).arg(binary);
                c
            }
            None => tokio::process::Command::new(binary),
        };
        let child = command
            .args([
                "run",
                "--cluster-id",
                cluster,
                "--repo-url",
                &remote.url(),
                "--policy",
            ])
            .arg(&policy)
            .arg("--state-dir")
            .arg(tmp.join("state"))
            .args([
                "--leader-election=false",
                &format!("--metrics-addr={metrics_addr}"),
                "--health-addr=127.0.0.1:0",
                "--log-format=text",
                "--fetch-interval=2s",
                &format!("--max-concurrent-reconciles={concurrency}"),
            ])
            .env("KUBECONFIG", &testbed::server().kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .expect("start vworkspace-operator run");
        let pid = child.id().expect("pid");
        Self {
            child,
            pid,
            metrics_addr,
        }
    }

    /// A number of its /proc status (kB for memory).
    pub(crate) fn status(&self, field: &str) -> u64 {
        proc_status(self.pid, field)
    }

    /// The sum of a metric's samples whose labels contain `filter` (from its /metrics).
    pub(crate) async fn metric(&self, name: &str, filter: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
            + 0.0 // an empty sum is -0.0
    }

    /// Failed reconciles (any controller) and ApplicationInstance reconciles so far, from its /metrics.
    pub(crate) async fn reconcile_counts(&self) -> (f64, f64) {
        const NAME: &str = "vworkspace_operator_reconcile_total";
        (
            self.metric(NAME, "result=\"error\"").await,
            self.metric(NAME, "controller=\"applicationinstance\"")
                .await,
        )
    }

    /// The total wall time of the Git view's syncs that verified a new revision
    /// (`repo_sync_duration_seconds_sum{result="verified"}`).
    pub(crate) async fn verified_sync_seconds(&self) -> f64 {
        self.metric(
            "vworkspace_operator_repo_sync_duration_seconds_sum",
            "result=\"verified\"",
        )
        .await
    }

    /// How many Git view syncs verified a new revision.
    pub(crate) async fn verified_syncs(&self) -> f64 {
        self.metric(
            "vworkspace_operator_repo_sync_duration_seconds_count",
            "result=\"verified\"",
        )
        .await
    }

    /// SIGTERM to its process group (the operator, and a profiler wrapping it): it stops its controllers and
    /// exits; SIGKILL after 30 s.
    pub(crate) async fn stop(mut self) {
        let group = format!("-{}", self.pid);
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = tokio::process::Command::new("kill")
                .args(["-KILL", "--", &group])
                .status()
                .await;
            let _ = self.child.kill().await;
        }
    }
}

/// Whether the operator starts with its binary out of the page cache (CODE_CACHE=cold, the default: a
/// Pod started on a node reads its image's binary from disk) or in it (CODE_CACHE=warm: just built). On a page
/// fault the kernel maps the neighbouring pages that are already cached too (fault-around), so with a warm cache
/// the file-backed RSS is most of the binary's 30 MB of code, touched or not; with a cold one it is the code
/// read from disk (the pages touched, with the kernel's read-around).
pub(crate) fn code_cache_cold() -> bool {
    std::env::var("CODE_CACHE").map_or(true, |v| v != "warm")
}

/// Drop the binary's pages from the page cache (GNU dd: `iflag=nocache count=0` advises the kernel to drop the
/// whole file's cached pages; pages mapped by a running process stay).
pub(crate) fn drop_cached_code(binary: &str) {
    if code_cache_cold() {
        let dropped = std::process::Command::new("dd")
            .args([
                &format!("if={binary}"),
                "iflag=nocache",
                "count=0",
                "status=none",
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(dropped, "dd could not drop {binary} from the page cache");
    }
}

pub(crate) async fn rss_run(client: &Client, n: usize, concurrency: usize, update: bool) -> RssRun {
    let fleet = Fleet::new(client, "bench-rss", "rss", n).await;
    let operator = ReleaseOperator::start(&fleet, concurrency).await;
    let flux = fleet.play_flux(client, concurrency).await;
    let cpu_start = proc_cpu_seconds(operator.pid);
    let started = Instant::now();
    create_intents(client, &fleet.intents, concurrency).await;
    all_ready(client, &fleet.cluster, n, Duration::from_secs(1800)).await;
    let wall = started.elapsed();
    let cpu_created = proc_cpu_seconds(operator.pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let first_sync = operator.verified_sync_seconds().await;
    let mut run = RssRun {
        wall,
        first_sync: Duration::from_secs_f64(first_sync),
        update: None,
        vm_hwm_kib: operator.status("VmHWM"),
        vm_rss_kib: operator.status("VmRSS"),
        rss_anon_kib: operator.status("RssAnon"),
        rss_file_kib: operator.status("RssFile"),
        threads: operator.status("Threads"),
        cpu_secs: (cpu_created - cpu_start, 0.0),
        reconcile_errors: 0.0,
        reconciles: 0.0,
    };
    // SMAPS_TO=FILE keeps the operator's /proc/<pid>/smaps at that moment (which mappings hold the RSS).
    if let Ok(path) = std::env::var("SMAPS_TO") {
        let _ = std::fs::copy(format!("/proc/{}/smaps", operator.pid), path);
    }
    if update {
        // One signed commit changes every intent; as Flux would, the intents are applied once the commit is
        // fetched (here: once the operator's view has verified it, so no intent is judged against the old view).
        let mut intents = fleet.intents.clone();
        let before = operator.verified_sync_seconds().await;
        signed_update_seen(&fleet, &operator, &mut intents, 1).await;
        let sync = operator.verified_sync_seconds().await - before;
        let cpu_before = proc_cpu_seconds(operator.pid);
        let started = Instant::now();
        create_intents(client, &intents, concurrency).await;
        all_ready_current(client, &fleet.cluster, n, Duration::from_secs(1800)).await;
        run.cpu_secs.1 = proc_cpu_seconds(operator.pid) - cpu_before;
        run.update = Some((
            started.elapsed(),
            Duration::from_secs_f64(sync),
            operator.status("VmHWM"),
        ));
    }
    (run.reconcile_errors, run.reconciles) = operator.reconcile_counts().await;
    flux.abort();
    operator.stop().await;
    run
}

/// [`signed_update`], then wait until the operator's view has verified the commit: Flux applies a commit after
/// fetching it, and the bench (playing Flux without a Kustomization the operator could follow) applies the
/// changed intents only then, so none is judged against the old view.
pub(crate) async fn signed_update_seen(
    fleet: &Fleet,
    operator: &ReleaseOperator,
    intents: &mut [(String, String)],
    round: usize,
) {
    let syncs = operator.verified_syncs().await;
    signed_update(fleet, intents, round);
    let deadline = Instant::now() + Duration::from_secs(300);
    while operator.verified_syncs().await == syncs {
        assert!(
            Instant::now() < deadline,
            "the view did not verify round {round}'s commit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One signed commit changing every intent's values (`replicaCount: round + 2`), as Flux's source would
/// carry it; `intents` are updated to what the commit holds.
pub(crate) fn signed_update(fleet: &Fleet, intents: &mut [(String, String)], round: usize) {
    let (cluster, n) = (&fleet.cluster, intents.len());
    for (i, (ns, yaml)) in intents.iter_mut().enumerate() {
        *yaml = app_yaml(cluster, ns, i)
            .replace("replicaCount: 2", &format!("replicaCount: {}", round + 2));
        fleet.remote.write(
            &format!("clusters/{cluster}/namespaces/{ns}/applicationinstance-app-{i}.yaml"),
            yaml,
        );
    }
    fleet.remote.commit(
        &format!("round {round}: {n} intents"),
        Some(&fleet.signer),
        &fleet.signer.email,
    );
}

// ---------------------------------------------------------------------------------------------------------
// 5. Churn: every intent updated ROUNDS times by signed commits; the release binary's memory over the rounds.

pub(crate) struct ChurnRound {
    /// 0: the first pass (creation).
    pub(crate) round: usize,
    pub(crate) wall: Duration,
    pub(crate) vm_rss_kib: u64,
    pub(crate) rss_anon_kib: u64,
    /// The operator's CPU seconds in this pass (its `git` processes included).
    pub(crate) cpu_secs: f64,
}

pub(crate) struct ChurnRun {
    pub(crate) rounds: Vec<ChurnRound>,
    pub(crate) vm_hwm_kib: u64,
    pub(crate) reconcile_errors: f64,
    pub(crate) reconciles: f64,
    pub(crate) total: Duration,
}

/// Wait until every instance of the cluster is Ready=True for its current generation (a watch: a list of
/// 10,000 intents every half second would load the API server the run measures).
pub(crate) async fn all_ready_current(client: &Client, cluster: &str, n: usize, timeout: Duration) {
    let current = |app: &ApplicationInstance| {
        let generation = app.metadata.generation;
        app.status.as_ref().is_some_and(|s| {
            s.observed_generation == generation
                && s.conditions.iter().any(|c| {
                    c.type_ == "Ready" && c.status == "True" && c.observed_generation == generation
                })
        })
    };
    all_instances(
        client,
        cluster,
        n,
        timeout,
        "Ready at their current generation",
        current,
    )
    .await;
}

pub(crate) async fn churn_run(
    client: &Client,
    n: usize,
    rounds: usize,
    pause: Duration,
    concurrency: usize,
) -> ChurnRun {
    let (cluster, prefix) = ("bench-churn", "churn");
    let fleet = Fleet::new(client, cluster, prefix, n).await;
    let operator = ReleaseOperator::start(&fleet, concurrency).await;
    let flux = fleet.play_flux(client, concurrency).await;
    let mut intents = fleet.intents.clone();
    let begin = Instant::now();
    let mut out = Vec::new();
    let mut cpu_before = proc_cpu_seconds(operator.pid);
    for round in 0..=rounds {
        let started = Instant::now();
        if round > 0 {
            // One signed commit changes every intent's values; Flux applies them all once fetched.
            signed_update_seen(&fleet, &operator, &mut intents, round).await;
        }
        create_intents(client, &intents, concurrency).await;
        all_ready_current(client, cluster, n, Duration::from_secs(1800)).await;
        let wall = started.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        eprintln!(
            "churn round {round}: {} ; RSS {}",
            secs(wall),
            mib(operator.status("VmRSS"))
        );
        let cpu_now = proc_cpu_seconds(operator.pid);
        out.push(ChurnRound {
            round,
            wall,
            vm_rss_kib: operator.status("VmRSS"),
            rss_anon_kib: operator.status("RssAnon"),
            cpu_secs: cpu_now - cpu_before,
        });
        cpu_before = cpu_now;
        if round < rounds {
            tokio::time::sleep(pause).await;
        }
    }
    let (reconcile_errors, reconciles) = operator.reconcile_counts().await;
    let run = ChurnRun {
        rounds: out,
        vm_hwm_kib: operator.status("VmHWM"),
        reconcile_errors,
        reconciles,
        total: begin.elapsed(),
    };
    flux.abort();
    operator.stop().await;
    run
}

// ---------------------------------------------------------------------------------------------------------
