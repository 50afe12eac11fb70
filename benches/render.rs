//! Rendering throughput: one ApplicationInstance into HelmRelease + chart source, and a whole tree of 1,000
//! intents (parse + validate + render) in memory. `benches/render-dir.sh` times the `render --dir` command.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vworkspace_operator::api::ApplicationInstance;
use vworkspace_operator::intent::SourceFile;
use vworkspace_operator::render::{RenderOptions, Renderer, Templates};
use vworkspace_operator::tree::render_tree;

const APP: &str = r#"
apiVersion: apps.vworkspace.io/v1alpha1
kind: ApplicationInstance
metadata:
  name: nextcloud-NUM
  namespace: team-NS
  labels: {app.vworkspace.io/managed-by: control-plane, app.vworkspace.io/cluster-id: bench}
spec:
  appRef: {catalogId: nextcloud}
  chart: {sourceType: oci, url: "oci://ghcr.io/nextcloud/helm", name: nextcloud, version: 6.6.4}
  release: {name: nextcloud-NUM, namespace: team-NS}
  values:
    source: inline
    inline:
      replicaCount: 2
      nextcloud: {trustedDomains: [cloud.example.com], mail: {enabled: true}}
      persistence: {enabled: true, size: 50Gi}
  integrations:
    ingress: {enabled: true, host: cloud-NUM.example.com}
    certManager: {enabled: true}
"#;

fn app_yaml(i: usize) -> String {
    APP.replace("NUM", &i.to_string())
        .replace("NS", &(i % 20).to_string())
}

fn renderer() -> Renderer {
    Renderer::new(
        Templates::embedded(),
        RenderOptions {
            cluster_id: Some("bench".into()),
            ..RenderOptions::default()
        },
    )
}

fn bench(c: &mut Criterion) {
    let renderer = renderer();
    let app: ApplicationInstance = serde_saphyr::from_str(&app_yaml(1)).unwrap();
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    group.bench_function("application_instance", |b| {
        b.iter(|| black_box(renderer.render_application(black_box(&app)).unwrap()))
    });
    let files: Vec<SourceFile> = (0..1000)
        .map(|i| SourceFile {
            path: format!(
                "clusters/bench/namespaces/team-{}/applicationinstance-{i}.yaml",
                i % 20
            ),
            data: app_yaml(i).into_bytes(),
        })
        .collect();
    // What the API server would check (schema, the CRD's CEL rules, the admission policy), evaluated here: one
    // intent again and again, so the rules' verdicts come from their memos after the first.
    let value = serde_json::to_value(&app).unwrap();
    let namespace = vworkspace_operator::validate::namespace_stand_in("team-1", None);
    let ctx = vworkspace_operator::validate::Context {
        cluster_id: Some("bench"),
        renderer: &renderer,
    };
    // One valid ApplicationInstance through the API server's rules (no problem expected).
    let api_server_rules = |value: &serde_json::Value, namespace: &serde_json::Value| {
        let problems = vworkspace_operator::validate::check_api_server(
            "f",
            vworkspace_operator::intent::IntentKind::ApplicationInstance,
            black_box(value),
            None,
            namespace,
            &ctx,
        );
        assert!(problems.is_empty(), "{problems:?}");
        black_box(problems)
    };
    group.bench_function("api_server_rules", |b| {
        b.iter(|| api_server_rules(&value, &namespace))
    });
    // The same rules on a cycle of 4,096 intents (more than any rule memo holds) in which every string and
    // number differs: each in a namespace of its own, with its own names, chart, version, sizes and host. The
    // policy's verdict and those of the rule nodes reading these are evaluated every time; a node that reads
    // only what all of them share (a boolean, an enum) still finds its verdict kept.
    let distinct: Vec<(serde_json::Value, serde_json::Value)> = (0..4096)
        .map(|i| {
            let yaml = APP
                .replace("NUM", &i.to_string())
                .replace("NS", &i.to_string())
                .replace("nextcloud", &format!("nextcloud{i}"))
                .replace("6.6.4", &format!("6.6.{i}"))
                .replace("replicaCount: 2", &format!("replicaCount: {i}"))
                .replace("50Gi", &format!("{i}Gi"));
            let app: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
            let ns = vworkspace_operator::validate::namespace_stand_in(&format!("team-{i}"), None);
            (app, ns)
        })
        .collect();
    let mut next = distinct.iter().cycle();
    group.bench_function("api_server_rules_distinct", |b| {
        b.iter(|| {
            let (value, namespace) = next.next().expect("a cycle");
            api_server_rules(value, namespace)
        })
    });
    group.throughput(Throughput::Elements(1000));
    group.sample_size(10);
    group.bench_function("tree_1000_intents", |b| {
        b.iter(|| {
            let result = render_tree(black_box(&files), &renderer, Some("bench"));
            assert!(result.problems.is_empty());
            black_box(result)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
