//! `render` ≡ the API server, by differential testing: seeded mutations of valid intents (names, labels,
//! annotations, chart versions, names, hosts and URLs, release names, inline values, Operation env names) go
//! both to the test bed's real kube-apiserver — a dry-run create with the CRDs, the ValidatingAdmissionPolicy
//! and the operator's webhook installed — and to `render`'s validation (`render_tree`, the function `render`
//! calls). Every verdict must agree; the test prints the count tried and every disagreement.

mod support;

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use support::testbed;
use vworkspace_operator::intent::SourceFile;
use vworkspace_operator::render::{RenderOptions, Renderer, Templates};
use vworkspace_operator::tree::render_tree;
use vworkspace_operator::webhook::{self, CertSource, WebhookConfig, WebhookServer, certs};

const CLUSTER: &str = "diff-1";
const NS: &str = "diff-a";
const SECRET_NS: &str = "vworkspace-system";
/// How many mutations are tried (seeded: the same ones on every run).
const MUTATIONS: usize = 700;
const SEED: u64 = 0x005e_ed22;

fn renderer() -> Renderer {
    Renderer::new(
        Templates::embedded(),
        RenderOptions {
            cluster_id: Some(CLUSTER.into()),
            ..RenderOptions::default()
        },
    )
}

/// The Operations' target, created first.
fn target() -> Value {
    app_named("target")
}

/// The ApplicationInstance that is mutated (never created: dry runs only).
fn app() -> Value {
    app_named("probe")
}

fn app_named(name: &str) -> Value {
    json!({
        "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
        "metadata": {"name": name, "namespace": NS,
            "labels": {"app.vworkspace.io/managed-by": "control-plane", "app.vworkspace.io/cluster-id": CLUSTER},
            "annotations": {"ops.vworkspace.io/runcommand": "job"}},
        "spec": {"appRef": {"catalogId": "nextcloud"},
                 "chart": {"sourceType": "oci", "url": "oci://ghcr.io/nextcloud/helm", "name": "nextcloud",
                           "version": "6.6.4"},
                 "release": {"name": name, "namespace": NS},
                 "values": {"source": "inline", "inline": {"replicas": 1}}}
    })
}

fn operation() -> Value {
    json!({
        "apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Operation",
        "metadata": {"name": "run", "namespace": NS,
            "labels": {"app.vworkspace.io/managed-by": "control-plane", "app.vworkspace.io/cluster-id": CLUSTER}},
        "spec": {"targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
                               "name": "target"},
                 "type": "RunCommand", "engine": "job",
                 "parameters": {"image": "busybox:1.36", "command": ["true"], "env": {"A": "1"}}}
    })
}

fn pick<'a>(rng: &mut fastrand::Rng, from: &[&'a str]) -> &'a str {
    from[rng.usize(..from.len())]
}

/// A name-like string: mostly close to the grammar, sometimes just over an edge.
fn name(rng: &mut fastrand::Rng) -> String {
    let label = |rng: &mut fastrand::Rng, n: usize| -> String {
        (0..n)
            .map(|_| pick(rng, &["a", "z", "0", "9", "-"]).to_string())
            .collect::<String>()
    };
    match rng.u8(..12) {
        0 => format!("a{}", label(rng, 61)) + "b",
        1 => format!("a{}", label(rng, 62)) + "b",
        2 => format!("{}.{}", "a".repeat(63), "b".repeat(rng.usize(180..=189))),
        3 => pick(
            rng,
            &[
                "Next_Cloud",
                "nextCloud",
                "next_cloud",
                "-a",
                "a-",
                "a..b",
                ".a",
                "a.",
                "ä",
            ],
        )
        .into(),
        4 => pick(
            rng,
            &[
                "a b", "a\nb", "a/b", "a:b", "", "a=b", "a.b", "1", "a-b.c-d",
            ],
        )
        .into(),
        _ => {
            let n = rng.usize(0..20);
            format!("a{}z", label(rng, n))
        }
    }
}

fn label_key(rng: &mut fastrand::Rng) -> String {
    match rng.u8(..6) {
        0 => format!("{}/{}", name(rng), name(rng)),
        1 => format!("example.com/{}", "k".repeat(rng.usize(62..=64))),
        2 => pick(
            rng,
            &[
                "a/b/c",
                "/a",
                "a/",
                "Example.com/a",
                "a_b",
                "A.b",
                "_a",
                "a_",
            ],
        )
        .into(),
        _ => name(rng),
    }
}

fn label_value(rng: &mut fastrand::Rng) -> String {
    match rng.u8(..5) {
        0 => "v".repeat(rng.usize(62..=64)),
        1 => pick(rng, &["", "A_b.c", "-a", "a b", "a/b", "a\n", "ü", "a_"]).into(),
        _ => name(rng),
    }
}

fn version(rng: &mut fastrand::Rng) -> String {
    pick(
        rng,
        &[
            "1.2.3",
            "01.2.3",
            "1.2",
            "v1.2.3",
            "^1.2.3",
            "1.2.3-rc.1",
            "1.2.3+b.1",
            "1.2.3-",
            "latest",
            "1.2.3-rc..1",
            "0.0.0",
            "1.2.3 ",
            "1.2.3-Ab-1.x",
        ],
    )
    .into()
}

fn url(rng: &mut fastrand::Rng) -> (String, String) {
    let host = pick(
        rng,
        &[
            "ghcr.io",
            "127.0.0.1",
            "2130706433",
            "0x7f.1",
            "0177.0.0.1",
            "127.1",
            "localhost",
            "a.localhost",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "metadata.google.internal",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "reg.ns.svc",
            "reg.ns.svc.cluster.local",
            "registry",
            "10.1.2.3",
            "charts.example.com",
            "r.io:5000",
            "127.0.0.1:5000",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "-bad.io",
            "a_b.io",
            "ghcr.io:0",
        ],
    );
    if rng.bool() {
        (
            "oci".into(),
            format!("oci://{host}/{}", pick(rng, &["charts", "a/b", "Up", ""])),
        )
    } else {
        (
            "helm".into(),
            format!(
                "https://{host}{}",
                pick(rng, &["", "/charts", "/a?b", "/~x"])
            ),
        )
    }
}

fn inline(rng: &mut fastrand::Rng) -> Value {
    let key = pick(
        rng,
        &[
            "password",
            "DB_PASSWORD ",
            "ｐａｓｓｗｏｒｄ",
            "pаssword",
            "apiKey",
            "token",
            "tokens",
            "host",
            "adminSecret",
            "secretName",
            "passwordKey",
        ],
    );
    let value = pick(rng, &["hunter2", "", "<set via externalSecret>"]);
    match rng.u8(..3) {
        0 => json!({ key: value }),
        1 => json!({"env": [{"name": key, "value": value}]}),
        _ => json!({"deep": {"list": [{"extraEnv": [{"key": key, "value": value}]}]}}),
    }
}

/// One mutation of a valid intent: (what was changed, the object).
fn mutate(rng: &mut fastrand::Rng) -> (String, Value) {
    if rng.u8(..6) == 0 {
        let mut op = operation();
        let env = pick(
            rng,
            &["A=B", "A\nB", "A B", "a.b-c", "", "X", "=", "Ü", "A\tB"],
        );
        op["spec"]["parameters"]["env"] = json!({ env: "v" });
        return (format!("Operation env name {env:?}"), op);
    }
    let mut a = app();
    let what = match rng.u8(..9) {
        0 => {
            let n = name(rng);
            a["metadata"]["name"] = json!(n);
            format!("metadata.name {n:?}")
        }
        1 => {
            let (k, v) = (label_key(rng), label_value(rng));
            a["metadata"]["labels"][&k] = json!(v);
            format!("label {k:?}={v:?}")
        }
        2 => {
            let k = label_key(rng);
            a["metadata"]["annotations"][&k] = json!("x");
            format!("annotation {k:?}")
        }
        3 => {
            let v = version(rng);
            a["spec"]["chart"]["version"] = json!(v);
            format!("chart.version {v:?}")
        }
        4 | 5 => {
            let (t, u) = url(rng);
            a["spec"]["chart"]["sourceType"] = json!(t);
            a["spec"]["chart"]["url"] = json!(u);
            format!("chart {t} {u:?}")
        }
        6 => {
            let n = name(rng);
            a["spec"]["chart"]["name"] = json!(n);
            format!("chart.name {n:?}")
        }
        7 => {
            let n = name(rng);
            a["spec"]["release"]["name"] = json!(n);
            format!("release.name {n:?}")
        }
        _ => {
            let v = inline(rng);
            a["spec"]["values"]["inline"] = v.clone();
            format!("values.inline {v}")
        }
    };
    (what, a)
}

/// render's verdict: the intent (and the Operation's target) as files of a tree, through `render_tree`.
fn render_verdict(object: &Value, r: &Renderer) -> Result<(), String> {
    let dir = format!("clusters/{CLUSTER}/namespaces/{NS}");
    let mut files = vec![SourceFile {
        path: format!("{dir}/intent.yaml"),
        data: serde_json::to_vec(object).unwrap(),
    }];
    if object["kind"] == "Operation" {
        files.push(SourceFile {
            path: format!("{dir}/target.yaml"),
            data: serde_json::to_vec(&target()).unwrap(),
        });
    }
    let result = render_tree(&files, r, Some(CLUSTER));
    if result.problems.is_empty() {
        Ok(())
    } else {
        Err(result
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

async fn dry_run_create(api: &Api<DynamicObject>, object: &Value) -> Result<(), String> {
    let obj: DynamicObject = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    api.create(&pp, &obj)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_and_the_api_server_agree_on_every_mutation() {
    vworkspace_operator::report::install_crypto_provider();
    let client = testbed::client().await;
    testbed::install_crds(&client, &testbed::project_crds()).await;
    testbed::namespace(&client, SECRET_NS, false).await;
    testbed::namespace(&client, NS, true).await;
    testbed::cluster_object(&client, CLUSTER).await;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = WebhookServer::bind(
        client.clone(),
        std::sync::Arc::new(renderer()),
        CLUSTER.into(),
        WebhookConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            certs: CertSource::Managed {
                secret_namespace: SECRET_NS.into(),
                secret_name: "webhook-tls".into(),
                configuration: webhook::CONFIGURATION_NAME.into(),
                settings: certs::CertSettings {
                    names: vec!["127.0.0.1".into()],
                    // Checked every validity/12: the caBundle is published within 2 s.
                    ca_validity: Duration::from_secs(3600),
                    cert_validity: Duration::from_secs(24),
                },
            },
            approval_key: None,
        },
        None,
    )
    .await
    .unwrap();
    let url = format!("https://{}/validate", server.local_addr());
    let serving = tokio::spawn(server.serve(stop_rx));
    let mut manifests = webhook::admission_manifests();
    manifests[2]["webhooks"][0]["clientConfig"] = json!({"url": url});
    for m in &manifests {
        testbed::apply(&client, m).await.unwrap();
    }
    let apps = testbed::intent_api(&client, "ApplicationInstance", NS);
    let ops = testbed::intent_api(&client, "Operation", NS);
    // Ready when both the policy and the webhook answer.
    let mut leaky = app();
    leaky["spec"]["values"]["inline"] = json!({"password": "x"});
    let mut foreign = app();
    foreign["metadata"]["labels"]["app.vworkspace.io/cluster-id"] = json!("elsewhere");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let w = dry_run_create(&apps, &leaky).await;
        let p = dry_run_create(&apps, &foreign).await;
        if w.as_ref()
            .is_err_and(|e| e.contains("InlineSecretMaterialRejected"))
            && p.as_ref().is_err_and(|e| e.contains("but this is cluster"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "admission not in force: {w:?} {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The target of the Operations exists (their target rules are judged on the real request).
    testbed::apply(&client, &target()).await.unwrap();

    let r = renderer();
    let mut rng = fastrand::Rng::with_seed(SEED);
    let (mut tried, mut refused) = (0usize, 0usize);
    let mut disagreements = Vec::new();
    for _ in 0..MUTATIONS {
        let (what, object) = mutate(&mut rng);
        let api = if object["kind"] == "Operation" {
            &ops
        } else {
            &apps
        };
        let server = dry_run_create(api, &object).await;
        let ours = render_verdict(&object, &r);
        tried += 1;
        refused += usize::from(server.is_err());
        if server.is_ok() != ours.is_ok() {
            disagreements.push(format!("{what}: API server {server:?}; render {ours:?}"));
        }
    }
    eprintln!(
        "differential: {tried} mutations tried, {refused} refused by the API server, {} disagreement(s)",
        disagreements.len()
    );
    stop.send(true).unwrap();
    serving.await.unwrap();
    // Both verdicts occur often enough for the comparison to mean something.
    assert!(
        refused > tried / 5 && refused < tried * 4 / 5,
        "{refused} of {tried} refused"
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}
