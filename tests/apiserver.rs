//! The CRDs and rendered objects on a real kube-apiserver (the test bed, testbed/).

mod support;

use kube::CustomResourceExt;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};
use support::testbed;
use vworkspace_operator::api::{ApplicationInstance, Cluster, Operation};
use vworkspace_operator::intent::source::load_dir;
use vworkspace_operator::render::{RenderOptions, Renderer, Templates};
use vworkspace_operator::tree::render_tree;

async fn setup() -> kube::Client {
    let client = testbed::client().await;
    let mut crds = testbed::project_crds();
    crds.extend(testbed::upstream_crds());
    testbed::install_crds(&client, &crds).await;
    client
}

#[test]
fn crds_on_disk_match_the_rust_types() {
    for crd in vworkspace_operator::api::crds() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("crds")
            .join(vworkspace_operator::cli::crdgen::file_name(&crd));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = vworkspace_operator::cli::crdgen::to_yaml(&crd).unwrap();
        assert!(
            on_disk == generated,
            "{} is out of date: run `cargo run -- crdgen --out-dir crds`",
            path.display()
        );
    }
    // Kinds, scope and short names as API.md states.
    let app = ApplicationInstance::crd();
    assert_eq!(
        app.spec.names.short_names,
        Some(vec!["appinst".to_string()])
    );
    assert_eq!(app.spec.scope, "Namespaced");
    assert_eq!(
        Operation::crd().spec.names.short_names,
        Some(vec!["op".to_string()])
    );
    let cluster = Cluster::crd();
    assert_eq!(cluster.spec.scope, "Cluster");
    for crd in vworkspace_operator::api::crds() {
        let v = &crd.spec.versions[0];
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{:?} has no status subresource",
            crd.metadata.name
        );
        let columns: Vec<String> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect();
        let expected: &[&str] = match crd.spec.names.kind.as_str() {
            "ApplicationInstance" => &["Ready", "Chart", "Version", "Age"],
            "Operation" => &["Phase", "Type", "Engine", "Age"],
            _ => &["Phase", "Connected", "Age"],
        };
        assert_eq!(columns, expected);
    }
}

#[tokio::test]
async fn crds_install_and_the_server_rejects_invalid_objects() {
    let client = setup().await;
    // Structural: the server reports no NonStructuralSchema condition on our CRDs.
    let crd_api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in vworkspace_operator::api::crds() {
        let live = crd_api
            .get(crd.metadata.name.as_deref().unwrap())
            .await
            .unwrap();
        let conditions = live.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            !conditions
                .iter()
                .any(|c| c.type_ == "NonStructuralSchema" && c.status == "True"),
            "{:?}: {conditions:?}",
            crd.metadata.name
        );
    }
    testbed::namespace(&client, "crd-check", true).await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "crd-check",
        &kube::discovery::ApiResource::erase::<ApplicationInstance>(&()),
    );
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps.vworkspace.io/v1alpha1",
        "kind": "ApplicationInstance",
        "metadata": {"name": "bad", "namespace": "crd-check"},
        "spec": {
            "appRef": {"catalogId": "nextcloud"},
            "chart": {"sourceType": "git", "url": "oci://x", "name": "x", "version": "1.0.0"}
        }
    }))
    .unwrap();
    let err = api
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("invalid sourceType must be rejected");
    match err {
        kube::Error::Api(e) => {
            assert_eq!(e.code, 422, "{e:?}");
            assert!(e.message.contains("spec.chart.sourceType"), "{}", e.message);
        }
        other => panic!("unexpected error {other}"),
    }
    let no_catalog: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps.vworkspace.io/v1alpha1",
        "kind": "ApplicationInstance",
        "metadata": {"name": "bad2", "namespace": "crd-check"},
        "spec": {"appRef": {"catalogId": ""}}
    }))
    .unwrap();
    assert!(
        api.create(&PostParams::default(), &no_catalog)
            .await
            .is_err(),
        "empty catalogId must be rejected"
    );
    let op_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "crd-check",
        &kube::discovery::ApiResource::erase::<Operation>(&()),
    );
    let bad_op: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "ops.vworkspace.io/v1alpha1",
        "kind": "Operation",
        "metadata": {"name": "bad-op", "namespace": "crd-check"},
        "spec": {
            "targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance", "name": "x"},
            "type": "Backup",
            "engine": "tractor"
        }
    }))
    .unwrap();
    assert!(
        op_api
            .create(&PostParams::default(), &bad_op)
            .await
            .is_err(),
        "unknown engine must be rejected"
    );
}

/// Every example intent is accepted by the server and reads back with nothing pruned; every rendered object
/// is accepted by the server (schemas of the upstream CRDs, and full validation of built-in kinds like Job).
#[tokio::test]
async fn examples_and_their_rendered_objects_install_on_the_server() {
    let client = setup().await;
    for ns in ["team-alpha", "team-beta", "velero"] {
        testbed::namespace(&client, ns, true).await;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = load_dir(&root.join("examples/cluster-repo")).unwrap();
    let renderer = Renderer::new(
        Templates::embedded(),
        RenderOptions {
            cluster_id: Some("eu-prod-1".into()),
            ..RenderOptions::default()
        },
    );
    let result = render_tree(&files, &renderer, Some("eu-prod-1"));
    assert!(result.problems.is_empty(), "{:?}", result.problems);

    let (docs, problems) = vworkspace_operator::intent::parse_files(&files);
    assert!(problems.is_empty());
    for doc in &docs {
        let created = testbed::apply(&client, &doc.value)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", doc.key));
        let live = serde_json::to_value(&created).unwrap();
        let mut want = doc.value["spec"].clone();
        if doc.key.kind == vworkspace_operator::intent::IntentKind::ApplicationInstance
            && want.get("mode").is_none()
        {
            want["mode"] = Value::String("managed".into()); // the CRD default
        }
        assert_eq!(
            live["spec"], want,
            "{}: the server changed or pruned the spec",
            doc.key
        );
    }
    let mut applied = 0;
    for obj in result.objects() {
        testbed::apply(&client, obj)
            .await
            .unwrap_or_else(|e| panic!("{}/{}: {e}", obj["kind"], obj["metadata"]["name"]));
        applied += 1;
    }
    assert!(applied >= 14);
}
