//! The bench's fleet: intents in a signed repo, created as Flux would create them, Flux's helm-controller played,
//! and waiting for all to be Ready.

use super::*;
// ---------------------------------------------------------------------------------------------------------
// Intents, the repo, Flux's part.

pub(crate) fn namespace(prefix: &str, i: usize) -> String {
    format!("{prefix}-{}", i % NAMESPACES)
}

pub(crate) fn app_yaml(cluster: &str, ns: &str, i: usize) -> String {
    support::manifests::nextcloud_app(
        cluster,
        ns,
        i,
        CHART_VERSION,
        "{replicaCount: 2, persistence: {enabled: true, size: 50Gi}}",
    )
}

/// The intents of one cluster: YAML, in namespaces `<prefix>-0..19`.
pub(crate) fn intents(cluster: &str, prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let ns = namespace(prefix, i);
            (ns.clone(), app_yaml(cluster, &ns, i))
        })
        .collect()
}

/// A bare remote holding every intent in one signed commit, and the trust policy for it.
pub(crate) fn signed_repo(
    dir: &Path,
    cluster: &str,
    intents: &[(String, String)],
) -> (GitRemote, Signer) {
    let remote = GitRemote::new(dir);
    let signer = Signer::new(&dir.join("keys"), "cp@example.com");
    remote.write("README.md", "cluster repo\n");
    for (i, (ns, yaml)) in intents.iter().enumerate() {
        remote.write(
            &format!("clusters/{cluster}/namespaces/{ns}/applicationinstance-app-{i}.yaml"),
            yaml,
        );
    }
    remote.commit(
        &format!("{} intents", intents.len()),
        Some(&signer),
        &signer.email,
    );
    (remote, signer)
}

pub(crate) async fn gated_namespaces(client: &Client, prefix: &str) {
    for i in 0..NAMESPACES {
        testbed::namespace(client, &namespace(prefix, i), true).await;
    }
}

/// Create the intents as Flux's kustomize-controller would (server-side apply), `concurrency` at a time.
pub(crate) async fn create_intents(
    client: &Client,
    intents: &[(String, String)],
    concurrency: usize,
) {
    futures::stream::iter(intents)
        .map(|(ns, yaml)| {
            let api: Api<ApplicationInstance> = Api::namespaced(client.clone(), ns);
            async move {
                let value: Value = serde_saphyr::from_str(yaml).expect("intent YAML");
                let name = value["metadata"]["name"].as_str().unwrap_or_default();
                api.patch(
                    name,
                    &PatchParams::apply("kustomize-controller").force(),
                    &Patch::Apply(&value),
                )
                .await
                .expect("create intent");
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
}

pub(crate) async fn write_flux_status(
    api: &Api<DynamicObject>,
    name: &str,
    ns: &str,
    generation: i64,
) {
    helm_standin::write_status(api, name, ns, generation, CHART_VERSION).await;
}

pub(crate) fn play_helm_controller(
    client: Client,
    hr: ApiResource,
    cluster: &str,
    concurrency: usize,
) -> tokio::task::JoinHandle<()> {
    helm_standin::play(client, hr, cluster, CHART_VERSION, concurrency)
}

pub(crate) fn is_ready(app: &ApplicationInstance) -> bool {
    app.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Wait until `n` instances of the cluster have Ready=True (a watch, so waiting adds no polling load).
pub(crate) async fn all_ready(client: &Client, cluster: &str, n: usize, timeout: Duration) {
    all_instances(client, cluster, n, timeout, "Ready", is_ready).await;
}

/// Wait until `n` instances of the cluster are `what` (`pred`), following them with a watch: an instance that
/// stops being `what` counts again only when it is once more.
pub(crate) async fn all_instances(
    client: &Client,
    cluster: &str,
    n: usize,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&ApplicationInstance) -> bool,
) {
    let api: Api<ApplicationInstance> = Api::all(client.clone());
    let selector = format!("app.vworkspace.io/cluster-id={cluster}");
    let mut done: HashSet<(String, String)> = HashSet::new();
    let mut stream = std::pin::pin!(
        watcher(api, watcher::Config::default().labels(&selector))
            .default_backoff()
            .applied_objects()
    );
    let deadline = tokio::time::Instant::now() + timeout;
    while done.len() < n {
        match tokio::time::timeout_at(deadline, stream.try_next()).await {
            Ok(Ok(Some(app))) => {
                let key = (app.namespace().unwrap_or_default(), app.name_any());
                if pred(&app) {
                    done.insert(key);
                } else {
                    done.remove(&key);
                }
            }
            Ok(_) => {}
            Err(_) => panic!(
                "only {} of {n} instances of {cluster} {what} after {timeout:?}",
                done.len()
            ),
        }
    }
}

pub(crate) async fn resource(client: &Client, api_version: &str, kind: &str) -> ApiResource {
    testbed::api_resource(client, &json!({"apiVersion": api_version, "kind": kind})).await
}

pub(crate) fn renderer(cluster: &str) -> Renderer {
    Renderer::new(
        Templates::embedded(),
        RenderOptions {
            cluster_id: Some(cluster.into()),
            ..RenderOptions::default()
        },
    )
}

/// One cluster's intents for an operator run: gated namespaces `<prefix>-0..19`, the intents, and a bare remote
/// holding them in one signed commit with the key the trust policy names, in a temporary folder (the
/// operator's state goes there too).
pub(crate) struct Fleet {
    pub(crate) cluster: String,
    pub(crate) intents: Vec<(String, String)>,
    pub(crate) tmp: tempfile::TempDir,
    pub(crate) remote: GitRemote,
    pub(crate) signer: Signer,
}

impl Fleet {
    pub(crate) async fn new(client: &Client, cluster: &str, prefix: &str, n: usize) -> Self {
        gated_namespaces(client, prefix).await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let intents = intents(cluster, prefix, n);
        let (remote, signer) = signed_repo(tmp.path(), cluster, &intents);
        Self {
            cluster: cluster.to_string(),
            intents,
            tmp,
            remote,
            signer,
        }
    }

    /// This process playing helm-controller for the fleet's HelmReleases.
    pub(crate) async fn play_flux(
        &self,
        client: &Client,
        concurrency: usize,
    ) -> tokio::task::JoinHandle<()> {
        let hr = resource(client, "helm.toolkit.fluxcd.io/v2", "HelmRelease").await;
        play_helm_controller(client.clone(), hr, &self.cluster, concurrency)
    }
}
