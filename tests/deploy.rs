//! What a cluster admin installs: the operator's Helm chart (charts/vworkspace-operator, rendered by the real
//! helm CLI with the values of flux/operator.yaml) and the Flux objects of flux/. They parse, agree with each
//! other and with the code that generates parts of them, install on the real API server (the test bed, with
//! the upstream Flux CRDs), and give the operator exactly the access docs/install.md describes — checked by the
//! API server's own RBAC authorizer (SubjectAccessReview, and SelfSubjectRulesReview for "nothing more") and by
//! real requests made as the operator's ServiceAccount (impersonation). tests/install.rs installs the same chart
//! through the real helm-controller.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};
use support::chart;
use support::manifests::{build, yaml_docs};
use support::rbac::{can, client_as};
use support::testbed;

const OPERATOR: &str = "system:serviceaccount:vworkspace-system:vworkspace-operator";

/// What the operator may do: `yes|no VERB GROUP/RESOURCE[/SUBRESOURCE] NAMESPACE|- [NAME]` (group `core` is
/// the core API group, `-` means cluster-wide).
const OPERATOR_ACCESS: &str = "
    # Writes to children only in the gated namespace that has the RoleBinding.
    yes create helm.toolkit.fluxcd.io/helmreleases        tenant-gated
    yes patch  source.toolkit.fluxcd.io/ocirepositories   tenant-gated
    yes delete argoproj.io/workflows                      tenant-gated
    yes create batch/jobs                                 tenant-gated
    yes create snapshot.storage.k8s.io/volumesnapshots    tenant-gated
    yes create volsync.backube/replicationsources         tenant-gated
    yes create core/events                                tenant-gated
    no  create helm.toolkit.fluxcd.io/helmreleases        tenant-plain
    no  create helm.toolkit.fluxcd.io/helmreleases        tenant-label-only
    no  create batch/jobs                                 tenant-plain
    no  create core/events                                tenant-plain
    # Reads of children everywhere (one watch per kind).
    yes list   helm.toolkit.fluxcd.io/helmreleases        -
    yes watch  batch/jobs                                 -
    yes get    helm.toolkit.fluxcd.io/helmreleases        tenant-plain
    yes list   core/namespaces                            -
    yes list   apiextensions.k8s.io/customresourcedefinitions -
    # The Flux engine (the default): no Argo CD Applications or AppProjects (argocd_engine_grants_… below).
    no  create argoproj.io/applications                   tenant-gated
    no  create argoproj.io/appprojects                    tenant-gated
    # Velero objects only in Velero's namespace.
    yes create velero.io/backups                          velero
    yes create velero.io/restores                         velero
    no  create velero.io/backups                          tenant-gated
    # Its own kinds: status and finalizers of intents, never creating or deleting them.
    yes patch  apps.vworkspace.io/applicationinstances/status tenant-plain
    yes patch  apps.vworkspace.io/applicationinstances    tenant-gated
    yes update ops.vworkspace.io/operations/finalizers    tenant-gated
    no  create apps.vworkspace.io/applicationinstances    tenant-gated
    no  delete ops.vworkspace.io/operations               tenant-gated
    yes create ops.vworkspace.io/clusters                 -
    yes patch  ops.vworkspace.io/clusters/status          -  example-cluster
    # Leader election and its own events.
    yes create coordination.k8s.io/leases                 vworkspace-system
    yes update coordination.k8s.io/leases                 vworkspace-system
    no  create coordination.k8s.io/leases                 tenant-gated
    yes create events.k8s.io/events                       vworkspace-system
    yes create events.k8s.io/events                       default
    # The admission webhook: its own certificates' Secret by name, and its own webhook configuration's caBundle.
    yes get    core/secrets                               vworkspace-system vworkspace-operator-webhook-tls
    yes update core/secrets                               vworkspace-system vworkspace-operator-webhook-tls
    no  update core/secrets                               vworkspace-system vworkspace-trust-policy
    yes create core/secrets                               vworkspace-system
    # Chart trust: the chart source's Secret of cosign public keys, written whole, never read, gated only.
    yes create core/secrets                               tenant-gated
    yes update core/secrets                               tenant-gated
    no  patch  core/secrets                               tenant-gated
    no  delete core/secrets                               tenant-gated
    no  create core/secrets                               tenant-plain
    yes patch  admissionregistration.k8s.io/validatingwebhookconfigurations - vworkspace-operator
    no  patch  admissionregistration.k8s.io/validatingwebhookconfigurations - other-webhook
    no  create admissionregistration.k8s.io/validatingwebhookconfigurations -
    no  patch  admissionregistration.k8s.io/validatingadmissionpolicies - vworkspace-intents
    # Never: other Secrets, ConfigMaps, workloads, RBAC, namespaces, CRDs.
    no  get    core/secrets                               -
    no  list   core/secrets                               -
    no  get    core/secrets                               tenant-gated
    no  get    core/secrets                               vworkspace-system
    no  get    core/configmaps                            tenant-gated
    no  create apps/deployments                           tenant-gated
    no  create core/pods                                  tenant-gated
    # The Job engine: its runner ServiceAccount (created when missing) and its Jobs' Pods (why a Job failed).
    yes create core/serviceaccounts                       tenant-gated
    yes list   core/pods                                  tenant-gated
    no  update core/serviceaccounts                       tenant-gated
    no  create core/serviceaccounts                       tenant-plain
    no  list   core/pods                                  tenant-plain
    no  create rbac.authorization.k8s.io/rolebindings     tenant-gated
    no  create rbac.authorization.k8s.io/clusterrolebindings -
    no  update core/namespaces                            -  tenant-plain
    no  delete apiextensions.k8s.io/customresourcedefinitions -
";

/// What Flux may write from the cluster repo (it impersonates the intent applier).
const APPLIER_ACCESS: &str = "
    yes create apps.vworkspace.io/applicationinstances    tenant-plain
    yes delete ops.vworkspace.io/operations               tenant-gated
    yes create core/namespaces                            -
    yes patch  core/namespaces                            -  tenant-plain
    no  delete core/namespaces                            -  tenant-plain
    yes create rbac.authorization.k8s.io/rolebindings     tenant-plain
    yes bind   rbac.authorization.k8s.io/clusterroles     -  vworkspace-operator-workloads
    no  bind   rbac.authorization.k8s.io/clusterroles     -  cluster-admin
    no  create helm.toolkit.fluxcd.io/helmreleases        tenant-gated
    no  create apps/deployments                           tenant-plain
    no  create rbac.authorization.k8s.io/clusterrolebindings -
    no  get    core/secrets                               tenant-plain
    no  patch  apps.vworkspace.io/applicationinstances/status tenant-plain
";
const APPLIER: &str = "system:serviceaccount:vworkspace-system:vworkspace-intent-applier";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn flux_dir() -> PathBuf {
    root().join("flux")
}

/// Everything installed: the chart as flux/operator.yaml's values render it (CRDs included), then flux/.
fn installed_objects() -> Vec<Value> {
    let mut objects = chart::template(&chart::flux_values());
    objects.extend(build(&flux_dir()).0);
    objects
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
];

#[test]
fn every_manifest_parses_and_is_part_of_the_build() {
    let (_, files) = build(&flux_dir());
    // Every YAML file in flux/ is used, except the per-namespace templates.
    let used: BTreeSet<PathBuf> = files.iter().map(|f| f.canonicalize().unwrap()).collect();
    for entry in std::fs::read_dir(flux_dir()).unwrap() {
        let path = entry.unwrap().path().canonicalize().unwrap();
        let name = path.file_name().unwrap();
        if name == "namespace-binding.yaml" || name == "push-namespace-binding.yaml" {
            continue;
        }
        assert!(
            used.contains(&path),
            "{} is not listed in flux/kustomization.yaml",
            path.display()
        );
    }
    // crds/kustomization.yml names exactly the generated CRD files.
    let k = yaml_docs(&root().join("crds/kustomization.yml")).remove(0);
    let listed: BTreeSet<String> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let generated: BTreeSet<String> = std::fs::read_dir(root().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    assert_eq!(listed, generated);
    // The chart's generated files are what `crdgen --chart-dir` writes: its crds/ are crds/, byte for byte,
    // and its admission template comes from the Rust code.
    let regenerate =
        "run `cargo run -- crdgen --out-dir crds --chart-dir charts/vworkspace-operator`";
    let chart_crds: BTreeSet<String> = std::fs::read_dir(chart::chart_dir().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        chart_crds, generated,
        "the chart's crds/ differ: {regenerate}"
    );
    for crd in vworkspace_operator::api::crds() {
        let name = vworkspace_operator::cli::crdgen::file_name(&crd);
        let want = vworkspace_operator::cli::crdgen::to_yaml(&crd).unwrap();
        for dir in [root().join("crds"), chart::chart_dir().join("crds")] {
            assert_eq!(
                std::fs::read_to_string(dir.join(&name)).unwrap(),
                want,
                "{} is out of date: {regenerate}",
                dir.join(&name).display()
            );
        }
    }
    assert_eq!(
        std::fs::read_to_string(chart::chart_dir().join("templates/admission.yaml")).unwrap(),
        vworkspace_operator::cli::crdgen::admission_template().unwrap(),
        "the chart's templates/admission.yaml is out of date: {regenerate}"
    );
    // The chart is released with the operator: one version.
    let meta = yaml_docs(&chart::chart_dir().join("Chart.yaml")).remove(0);
    assert_eq!(meta["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(meta["appVersion"], env!("CARGO_PKG_VERSION"));
    let source = build(&flux_dir())
        .0
        .into_iter()
        .find(|o| o["kind"] == "OCIRepository" && o["metadata"]["name"] == "vworkspace-operator")
        .expect("flux/operator.yaml's OCIRepository");
    assert_eq!(source["spec"]["ref"]["tag"], env!("CARGO_PKG_VERSION"));
    // `helm lint` is clean (errors and warnings; the icon is only a recommendation).
    let values = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(values.path(), chart::flux_values().to_string()).unwrap();
    let (ok, stdout, stderr) = chart::helm(&[
        "lint",
        "--strict",
        &chart::chart_dir().display().to_string(),
        "--values",
        &values.path().display().to_string(),
    ]);
    assert!(ok, "helm lint: {stdout}{stderr}");
    assert!(
        !stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"),
        "helm lint: {stdout}"
    );

    // Every object: kind, name, explicit namespace when namespaced, our labels, no duplicates.
    let objects = installed_objects();
    let mut seen = BTreeSet::new();
    for o in &objects {
        let kind = o["kind"].as_str().expect("kind");
        let name = o["metadata"]["name"].as_str().expect("metadata.name");
        assert!(o["apiVersion"].is_string(), "{kind} {name}: apiVersion");
        let ns = o["metadata"]["namespace"].as_str();
        if CLUSTER_SCOPED.contains(&kind) {
            assert!(ns.is_none(), "{kind} {name} is cluster-scoped");
        } else {
            assert!(ns.is_some(), "{kind} {name} needs an explicit namespace");
        }
        if kind != "CustomResourceDefinition" {
            assert_eq!(
                o["metadata"]["labels"]["app.kubernetes.io/part-of"], "vworkspace-operator",
                "{kind} {name}"
            );
        }
        assert!(
            seen.insert((kind.to_string(), ns.map(str::to_string), name.to_string())),
            "{kind} {name} twice"
        );
    }
    let template = yaml_docs(&flux_dir().join("namespace-binding.yaml"));
    assert_eq!(template.len(), 1);
    assert_eq!(
        template[0]["roleRef"]["name"],
        "vworkspace-operator-workloads"
    );
}

/// values.yaml and values.schema.json describe the same keys, and bad values fail at install with a message
/// naming the value.
#[test]
fn the_chart_refuses_bad_values_by_name() {
    fn keys(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
        if let Some(map) = v.as_object() {
            for (k, child) in map {
                let path = format!("{prefix}/{k}");
                out.insert(path.clone());
                keys(&path, child, out);
            }
        }
    }
    fn schema_keys(prefix: &str, schema: &Value, out: &mut BTreeSet<String>) {
        if let Some(props) = schema["properties"].as_object() {
            for (k, child) in props {
                let path = format!("{prefix}/{k}");
                out.insert(path.clone());
                if child["additionalProperties"] == false {
                    schema_keys(&path, child, out);
                }
            }
        }
    }
    let defaults = yaml_docs(&chart::chart_dir().join("values.yaml")).remove(0);
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(chart::chart_dir().join("values.schema.json")).unwrap(),
    )
    .unwrap();
    let mut in_values = BTreeSet::new();
    keys("", &defaults, &mut in_values);
    let mut in_schema = BTreeSet::new();
    schema_keys("", &schema, &mut in_schema);
    in_schema.remove("/global");
    // Every value the schema knows has its documented default in values.yaml (the reverse holds by the schema:
    // its objects refuse unknown keys, and the defaults render in every test here).
    let open: BTreeSet<&String> = in_schema
        .iter()
        .filter(|k| !in_values.contains(*k))
        .collect();
    assert!(
        open.is_empty(),
        "in values.schema.json but not values.yaml: {open:?}"
    );

    let base = chart::flux_values();
    let with = |pointer: &str, value: Value| {
        let mut v = base.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let mut at = &mut v;
        for part in parent.split('/').filter(|p| !p.is_empty()) {
            if at.get(part).is_none() {
                at[part] = json!({});
            }
            at = &mut at[part];
        }
        at[key] = value;
        v
    };
    for (pointer, value, says) in [
        ("/clusterId", json!(""), "/clusterId"),
        ("/clusterId", json!("Not_A_Label"), "/clusterId"),
        ("/repo/url", json!(""), "/repo/url"),
        ("/repo/url", json!("ftp://example.com/r.git"), "/repo/url"),
        (
            "/controlPlane/endpoint",
            json!("https://user:pw@cp.example.com"),
            "/controlPlane/endpoint",
        ),
        (
            "/admission/webhook/url",
            json!("http://10.0.0.1:9443/validate"),
            "/admission/webhook/url",
        ),
        ("/image/pullPolicy", json!("Sometimes"), "/image/pullPolicy"),
        ("/image/digest", json!("sha256:xyz"), "/image/digest"),
        ("/fetchInterval", json!("soon"), "/fetchInterval"),
        ("/log/format", json!("xml"), "/log/format"),
        ("/replicaCount", json!(-1), "/replicaCount"),
        ("/metrics/port", json!(70000), "/metrics/port"),
        (
            "/namespaceSelector",
            json!("managed-by in (a,b)"),
            "/namespaceSelector",
        ),
        ("/velero/rbac", json!("yes"), "/velero/rbac"),
        ("/bogus", json!(1), "bogus"),
        ("/admission/webhook/bogus", json!(1), "bogus"),
    ] {
        let got = chart::try_template(&with(pointer, value.clone()));
        match got {
            Ok(_) => panic!("{pointer}={value} was accepted"),
            Err(e) => assert!(
                e.contains(says),
                "{pointer}={value}: the error does not name it: {e}"
            ),
        }
    }
    // The optional parts render when asked for.
    let all = with("/metrics/serviceMonitor/enabled", json!(true));
    let mut all = all;
    all["networkPolicy"] = json!({"enabled": true, "metricsNamespaceSelector": {"matchLabels": {"monitoring": "true"}}});
    all["templatesConfigMap"] = json!("my-templates");
    all["image"]["digest"] = json!(format!("sha256:{}", "a".repeat(64)));
    let objects = chart::template(&all);
    let kinds: BTreeSet<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert!(
        kinds.contains("ServiceMonitor") && kinds.contains("NetworkPolicy"),
        "{kinds:?}"
    );
    let deploy = find(&objects, "Deployment", "vworkspace-operator");
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert!(
        c["image"]
            .as_str()
            .unwrap()
            .ends_with(&format!("@sha256:{}", "a".repeat(64)))
    );
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "VWORKSPACE_TEMPLATES")
    );
    // Without the webhook: no webhook configuration, Service, port or Secret access.
    let mut off = base.clone();
    off["admission"] = json!({"webhook": {"enabled": false}});
    let objects = chart::template(&off);
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "ValidatingWebhookConfiguration")
    );
    assert!(
        objects
            .iter()
            .any(|o| o["kind"] == "ValidatingAdmissionPolicy")
    );
    assert!(
        !objects
            .iter()
            .any(|o| o["metadata"]["name"] == "vworkspace-operator-webhook")
    );
    let role = find(&objects, "Role", "vworkspace-operator");
    assert!(!role.to_string().contains("secrets"), "{role}");
    // With a webhook URL: the configuration points there and the certificate names its host.
    let url = with(
        "/admission/webhook/url",
        json!("https://10.1.2.3:9443/validate"),
    );
    let objects = chart::template(&url);
    let hooks = find(
        &objects,
        "ValidatingWebhookConfiguration",
        "vworkspace-operator",
    );
    assert_eq!(
        hooks["webhooks"][0]["clientConfig"],
        json!({"url": "https://10.1.2.3:9443/validate"})
    );
    let deploy = find(&objects, "Deployment", "vworkspace-operator");
    let env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        env.iter()
            .any(|e| e["name"] == "VWORKSPACE_WEBHOOK_NAMES" && e["value"] == "10.1.2.3")
    );
}

#[test]
fn cluster_values_agree_and_the_deployment_is_locked_down() {
    let objects = installed_objects();
    let values = chart::flux_values();
    let cluster_id = values["clusterId"].as_str().unwrap();
    let sync = find(&objects, "Kustomization", "vworkspace-cluster-intents");
    assert_eq!(
        sync["spec"]["path"],
        format!("./clusters/{cluster_id}"),
        "the Flux path and the operator's cluster id must name the same cluster"
    );
    assert_eq!(
        sync["spec"]["serviceAccountName"],
        "vworkspace-intent-applier"
    );
    // The account Flux impersonates is the chart's.
    find(&objects, "ServiceAccount", "vworkspace-intent-applier");
    assert_eq!(sync["spec"]["prune"], true);
    let repo = find(&objects, "GitRepository", "vworkspace-cluster-repo");
    assert_eq!(repo["spec"]["url"], values["repo"]["url"]);
    assert_eq!(repo["spec"]["ref"]["branch"], values["repo"]["branch"]);
    assert_eq!(repo["spec"]["verify"]["mode"], "HEAD");
    assert_eq!(sync["spec"]["sourceRef"]["name"], repo["metadata"]["name"]);
    // Flux installs the chart from its OCIRepository and keeps the CRDs current on upgrades.
    let release = find(&objects, "HelmRelease", "vworkspace-operator");
    assert_eq!(release["spec"]["chartRef"]["kind"], "OCIRepository");
    let source = find(
        &objects,
        "OCIRepository",
        release["spec"]["chartRef"]["name"].as_str().unwrap(),
    );
    assert_eq!(
        source["spec"]["layerSelector"]["mediaType"],
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
    );
    assert_eq!(release["spec"]["install"]["crds"], "Create");
    assert_eq!(release["spec"]["upgrade"]["crds"], "CreateReplace");

    let deploy = find(&objects, "Deployment", "vworkspace-operator");
    let spec = &deploy["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], 0);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "vworkspace-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"],
        "registry.example.com/vworkspace/vworkspace-operator:0.1.0"
    );
    assert_eq!(c["args"], json!(["run"]));
    let sc = &c["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "health", "{probe}");
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for kind in ["requests", "limits"] {
        assert!(c["resources"][kind]["memory"].is_string(), "{kind}");
        assert!(c["resources"][kind]["cpu"].is_string(), "{kind}");
    }
    let env = |name: &str| -> Value {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(env("VWORKSPACE_LEADER_ELECTION"), "true");
    let ports: Vec<(&str, i64)> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [("metrics", 8080), ("health", 8081), ("webhook", 9443)]
    );
    assert!(
        env("VWORKSPACE_WEBHOOK_ADDR")
            .as_str()
            .unwrap()
            .ends_with(":9443")
    );
    assert!(
        env("VWORKSPACE_METRICS_ADDR")
            .as_str()
            .unwrap()
            .ends_with(":8080")
    );
    assert!(
        env("VWORKSPACE_HEALTH_ADDR")
            .as_str()
            .unwrap()
            .ends_with(":8081")
    );
    // Every file the operator reads is on a mounted volume; everything writable is an emptyDir.
    let mounts: Vec<(&str, &str)> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["mountPath"].as_str().unwrap(),
            )
        })
        .collect();
    for var in [
        "VWORKSPACE_POLICY",
        "VWORKSPACE_GIT_CREDENTIALS",
        "VWORKSPACE_CONTROL_PLANE_TOKEN_FILE",
        "VWORKSPACE_CONTROL_PLANE_HMAC_KEY_FILE",
        "VWORKSPACE_APPROVAL_KEY_FILE",
        "VWORKSPACE_STATE_DIR",
    ] {
        let path = env(var);
        let path = path.as_str().unwrap_or_else(|| panic!("{var} not set"));
        assert!(
            mounts.iter().any(|(_, m)| path.starts_with(m)),
            "{var}={path} is not on a mounted volume"
        );
    }
    let volumes = pod["volumes"].as_array().unwrap();
    let trust = volumes
        .iter()
        .find(|v| v["name"] == "trust-policy")
        .unwrap();
    assert_eq!(trust["secret"]["secretName"], "vworkspace-trust-policy");
    assert!(
        trust["secret"]["optional"].is_null(),
        "the trust policy must not be optional (fail closed)"
    );
    for v in volumes {
        assert!(
            v["secret"].is_object() || v["emptyDir"].is_object(),
            "{}: only Secrets (read-only) and emptyDirs",
            v["name"]
        );
        if let Some(mode) = v["secret"]["defaultMode"].as_i64() {
            assert_eq!(mode, 0o440, "{}", v["name"]);
        }
    }
    // Every VWORKSPACE_* variable set by the manifests is one `vworkspace-operator run` reads.
    let run = <vworkspace_operator::cli::run::Args as clap::Args>::augment_args(
        clap::Command::new("run"),
    );
    let known: BTreeSet<String> = run
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    let set: Vec<String> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    for name in set.iter().filter(|n| n.starts_with("VWORKSPACE_")) {
        assert!(
            known.contains(name),
            "{name} is not an environment variable of `run`"
        );
    }
    for required in [
        "VWORKSPACE_CLUSTER_ID",
        "VWORKSPACE_REPO_URL",
        "VWORKSPACE_POLICY",
    ] {
        assert!(set.iter().any(|n| n == required), "{required} is not set");
    }
    assert_eq!(env("VWORKSPACE_CLUSTER_ID"), values["clusterId"]);
    assert_eq!(env("VWORKSPACE_REPO_URL"), values["repo"]["url"]);
    assert_eq!(
        env("VWORKSPACE_NAMESPACE_SELECTOR"),
        vworkspace_operator::api::labels::DEFAULT_NAMESPACE_SELECTOR
    );
    assert_eq!(
        env("VWORKSPACE_WEBHOOK_SECRET"),
        "vworkspace-system/vworkspace-operator-webhook-tls"
    );
    assert_eq!(
        env("VWORKSPACE_WEBHOOK_NAMES"),
        "vworkspace-operator-webhook.vworkspace-system.svc"
    );
    let hooks = find(
        &objects,
        "ValidatingWebhookConfiguration",
        "vworkspace-operator",
    );
    assert_eq!(
        hooks["webhooks"][0]["clientConfig"]["service"],
        json!({"namespace": "vworkspace-system", "name": "vworkspace-operator-webhook", "path": "/validate", "port": 443})
    );

    let svc = find(&objects, "Service", "vworkspace-operator-metrics");
    assert_eq!(svc["spec"]["selector"], spec["selector"]["matchLabels"]);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
}

// ------------------------------------------------------------------------------------------------------
// On the real API server

/// Wait (generously) until `user` may create Flux `resource` in `ns`.
async fn wait_allowed(admin: &Client, user: &str, resource: &str, ns: &str) {
    for _ in 0..300 {
        if can(
            admin,
            user,
            "create",
            "helm.toolkit.fluxcd.io",
            resource,
            Some(ns),
            None,
        )
        .await
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{user} never got create {resource} in {ns}");
}

/// One permission: (API group, resource[/subresource], verb, object name or `*`).
type Rule = (String, String, String, String);

/// The ```` ```rbac ACCOUNT ```` table of docs/install.md: `SCOPE GROUP RESOURCES VERBS [NAMES]`, comma-separated
/// lists, group `core` for the core group; SCOPE is `cluster`, `release` (the operator's namespace), `default`,
/// `gated` (each gated namespace) or `velero`.
fn documented_rules(account: &str) -> Vec<(String, Rule)> {
    let doc = std::fs::read_to_string(root().join("docs/install.md")).unwrap();
    let fence = format!("```rbac {account}\n");
    let start = doc
        .find(&fence)
        .unwrap_or_else(|| panic!("docs/install.md has no {fence:?} block"))
        + fence.len();
    let body = &doc[start..start + doc[start..].find("```").unwrap()];
    let mut rules = Vec::new();
    for line in body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(
            f.len() == 4 || f.len() == 5,
            "docs/install.md: bad rbac line {line:?}"
        );
        let names: Vec<&str> = f.get(4).map_or(vec!["*"], |n| n.split(',').collect());
        for group in f[1].split(',') {
            let group = if group == "core" { "" } else { group };
            for resource in f[2].split(',') {
                for verb in f[3].split(',') {
                    for name in &names {
                        rules.push((
                            f[0].to_string(),
                            (group.into(), resource.into(), verb.into(), name.to_string()),
                        ));
                    }
                }
            }
        }
    }
    rules
}

/// Every resource permission the client's identity holds in `ns`, as the authorizer lists it.
async fn rules_review(client: &Client, ns: &str) -> BTreeSet<Rule> {
    use k8s_openapi::api::authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec};
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(ns.into()),
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectRulesReview> = Api::all(client.clone());
    let got = api.create(&PostParams::default(), &review).await.unwrap();
    let status = got.status.expect("rules review status");
    assert!(
        !status.incomplete,
        "{ns}: incomplete rules review: {:?}",
        status.evaluation_error
    );
    let mut out = BTreeSet::new();
    for rule in status.resource_rules {
        let groups = rule.api_groups.unwrap_or_default();
        let resources = rule.resources.unwrap_or_default();
        let names = rule
            .resource_names
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| vec!["*".into()]);
        for g in &groups {
            for r in &resources {
                for v in &rule.verbs {
                    for n in &names {
                        out.insert((g.clone(), r.clone(), v.clone(), n.clone()));
                    }
                }
            }
        }
    }
    out
}

fn object_api(client: &Client, ar: &kube::discovery::ApiResource, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, ar)
}

fn is_forbidden<T>(r: &Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(e)) if e.code == 403)
}

#[tokio::test]
async fn installs_and_grants_least_privilege() {
    let admin = testbed::client().await;
    testbed::install_crds(&admin, &testbed::upstream_crds()).await;
    // Velero is installed (its namespace exists); two tenant namespaces: one gated with the RoleBinding,
    // one plain, and one with the gate label but no RoleBinding.
    // A real cluster always has "default"; this API server may not have created it yet.
    testbed::namespace(&admin, "default", false).await;
    testbed::namespace(&admin, "velero", false).await;
    testbed::namespace(&admin, "tenant-gated", true).await;
    testbed::namespace(&admin, "tenant-plain", false).await;
    testbed::namespace(&admin, "tenant-label-only", true).await;

    // Install the build like `kubectl apply -k flux/`: CRDs and namespaces first.
    let objects = installed_objects();
    let crds: Vec<CustomResourceDefinition> = objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .map(|o| serde_json::from_value(o.clone()).unwrap())
        .collect();
    assert_eq!(crds.len(), 3);
    testbed::install_crds(&admin, &crds).await;
    let rank = |o: &Value| match o["kind"].as_str().unwrap() {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        _ => 2,
    };
    let mut ordered: Vec<&Value> = objects.iter().collect();
    ordered.sort_by_key(|o| rank(o));
    for obj in ordered {
        if obj["kind"] == "CustomResourceDefinition" {
            continue;
        }
        testbed::apply(&admin, obj).await.unwrap_or_else(|e| {
            panic!(
                "{} {} did not install: {e}",
                obj["kind"], obj["metadata"]["name"]
            )
        });
    }
    // The per-namespace template, for the gated namespace.
    let mut binding = yaml_docs(&flux_dir().join("namespace-binding.yaml")).remove(0);
    binding["metadata"]["namespace"] = json!("tenant-gated");
    testbed::apply(&admin, &binding).await.unwrap();

    // The authorizer sees bindings through its own cache: wait until it has the last one created (it
    // receives them in order, so the earlier ones are there too).
    wait_allowed(&admin, OPERATOR, "helmreleases", "tenant-gated").await;

    // What Flux syncs and what runs are there.
    let ns: Api<Namespace> = Api::all(admin.clone());
    let system = ns.get("vworkspace-system").await.unwrap();
    assert_eq!(
        system.metadata.labels.unwrap()["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    for (api_version, kind, name) in [
        ("apps/v1", "Deployment", "vworkspace-operator"),
        (
            "source.toolkit.fluxcd.io/v1",
            "GitRepository",
            "vworkspace-cluster-repo",
        ),
        (
            "kustomize.toolkit.fluxcd.io/v1",
            "Kustomization",
            "vworkspace-cluster-intents",
        ),
    ] {
        let ar =
            testbed::api_resource(&admin, &json!({"apiVersion": api_version, "kind": kind})).await;
        let got = object_api(&admin, &ar, "vworkspace-system").get(name).await;
        assert!(got.is_ok(), "{kind} {name}: {got:?}");
    }

    // Both accounts, as the authorizer sees them.
    let mut wrong = Vec::new();
    for (user, table) in [(OPERATOR, OPERATOR_ACCESS), (APPLIER, APPLIER_ACCESS)] {
        for line in table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (want, verb, target, ns, name) =
                (f[0] == "yes", f[1], f[2], f[3], f.get(4).copied());
            let (group, resource) = target.split_once('/').unwrap();
            let group = if group == "core" { "" } else { group };
            let ns = (ns != "-").then_some(ns);
            if can(&admin, user, verb, group, resource, ns, name).await != want {
                wrong.push(format!("{user}: {line}"));
            }
        }
    }
    assert!(wrong.is_empty(), "RBAC differs:\n{}", wrong.join("\n"));

    // Nothing more than docs/install.md says: every rule each account holds, namespace by namespace, as the
    // authorizer itself lists it (SelfSubjectRulesReview as that account), beyond what any ServiceAccount holds
    // (the self-reviews, discovery: the rules of an account nothing binds), equals the documented table.
    let nobody = client_as("system:serviceaccount:vworkspace-system:nobody").await;
    let mut differs = Vec::new();
    for (account, user) in [("operator", OPERATOR), ("intent-applier", APPLIER)] {
        let documented = documented_rules(account);
        let client = client_as(user).await;
        for (scope, ns) in [
            ("release", "vworkspace-system"),
            ("default", "default"),
            ("gated", "tenant-gated"),
            ("plain", "tenant-plain"),
            ("velero", "velero"),
        ] {
            let want: BTreeSet<Rule> = documented
                .iter()
                .filter(|(s, _)| s == "cluster" || s == scope)
                .map(|(_, r)| r.clone())
                .collect();
            let baseline = rules_review(&nobody, ns).await;
            let got: BTreeSet<Rule> = rules_review(&client, ns)
                .await
                .difference(&baseline)
                .cloned()
                .collect();
            for extra in got.difference(&want) {
                differs.push(format!(
                    "{account} in {ns}: granted but not documented: {extra:?}"
                ));
            }
            for missing in want.difference(&got) {
                differs.push(format!(
                    "{account} in {ns}: documented but not granted: {missing:?}"
                ));
            }
        }
    }
    assert!(
        differs.is_empty(),
        "the RBAC differs from docs/install.md:\n{}",
        differs.join("\n")
    );

    // Real requests as the operator.
    let operator = client_as(OPERATOR).await;
    let hr_ar = testbed::api_resource(
        &admin,
        &json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease"}),
    )
    .await;
    let hr = |ns: &str| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "metadata": {"name": "wiki", "namespace": ns},
            "spec": {"interval": "10m", "chartRef": {"kind": "OCIRepository", "name": "wiki"}}
        }))
        .unwrap()
    };
    object_api(&operator, &hr_ar, "tenant-gated")
        .create(&PostParams::default(), &hr("tenant-gated"))
        .await
        .expect("the operator creates a HelmRelease in a gated namespace");
    assert!(is_forbidden(
        &object_api(&operator, &hr_ar, "tenant-plain")
            .create(&PostParams::default(), &hr("tenant-plain"))
            .await
    ));
    assert!(is_forbidden(
        &object_api(&operator, &hr_ar, "tenant-label-only")
            .create(&PostParams::default(), &hr("tenant-label-only"))
            .await
    ));
    // It reads HelmReleases everywhere (the one it created, and the operator's own from flux/operator.yaml).
    let all_hr: Api<DynamicObject> = Api::all_with(operator.clone(), &hr_ar);
    let mut listed: Vec<(String, String)> = all_hr
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| (o.metadata.namespace.unwrap(), o.metadata.name.unwrap()))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            ("tenant-gated".to_string(), "wiki".to_string()),
            ("vworkspace-system".into(), "vworkspace-operator".into())
        ]
    );
    let secrets: Api<Secret> = Api::all(operator.clone());
    assert!(is_forbidden(&secrets.list(&ListParams::default()).await));

    // Real requests as the intent applier: it can gate a namespace for the operator, nothing more.
    let applier = client_as(APPLIER).await;
    let rb_ar = testbed::api_resource(
        &admin,
        &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding"}),
    )
    .await;
    let mut gate: DynamicObject = serde_json::from_value(binding.clone()).unwrap();
    gate.metadata.namespace = Some("tenant-label-only".into());
    object_api(&applier, &rb_ar, "tenant-label-only")
        .create(&PostParams::default(), &gate)
        .await
        .expect("the applier binds the workloads role");
    // The RoleBinding from Git gates the namespace.
    wait_allowed(&admin, OPERATOR, "helmreleases", "tenant-label-only").await;
    let mut escalate = binding.clone();
    escalate["metadata"]["namespace"] = json!("tenant-plain");
    escalate["metadata"]["name"] = json!("escalate");
    escalate["roleRef"]["name"] = json!("cluster-admin");
    let escalate: DynamicObject = serde_json::from_value(escalate).unwrap();
    let got = object_api(&applier, &rb_ar, "tenant-plain")
        .create(&PostParams::default(), &escalate)
        .await;
    assert!(is_forbidden(&got), "binding cluster-admin: {got:?}");
    let deploy_ar = testbed::api_resource(
        &admin,
        &json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
    )
    .await;
    let deployment: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "tenant-plain"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    assert!(is_forbidden(
        &object_api(&applier, &deploy_ar, "tenant-plain")
            .create(&PostParams::default(), &deployment)
            .await
    ));
}

/// `mode: pull` renders Pull mode: no repo needed, the mode and its settings in the Deployment, and the RBAC it
/// needs by name only (its credentials Secret, the registration token Secret, its applied-job ConfigMap), with
/// intents created and deleted only where the workloads role is bound (gated namespaces). GitOps mode renders
/// none of it.
#[test]
fn pull_mode_renders_its_settings_and_named_rbac_only() {
    let mut values = chart::flux_values();
    values["mode"] = json!("pull");
    values["repo"]["url"] = json!("");
    values["pull"] = json!({"registrationTokenSecret": "cp-registration", "pollWait": "20s",
        "jobDeadline": "10m", "allowInsecureHttp": false});
    let pull = chart::template(&values);
    let env_of = |objects: &[Value]| -> Vec<(String, String)> {
        find(objects, "Deployment", "vworkspace-operator")["spec"]["template"]["spec"]["containers"]
            [0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let env = env_of(&pull);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("VWORKSPACE_MODE").as_deref(), Some("pull"));
    assert_eq!(get("VWORKSPACE_POLL_WAIT").as_deref(), Some("20s"));
    assert_eq!(get("VWORKSPACE_JOB_DEADLINE").as_deref(), Some("10m"));
    assert_eq!(get("VWORKSPACE_REPO_URL"), None);
    assert_eq!(get("VWORKSPACE_ALLOW_INSECURE_HTTP"), None);
    let role = find(&pull, "Role", "vworkspace-operator");
    let rules = role["rules"].as_array().unwrap();
    let named = |resource: &str, name: &str| {
        rules
            .iter()
            .find(|r| {
                r["resources"][0] == resource
                    && r["resourceNames"]
                        .as_array()
                        .is_some_and(|n| n.contains(&json!(name)))
            })
            .map(|r| r["verbs"].clone())
    };
    assert_eq!(
        named("secrets", "vworkspace-agent-credentials"),
        Some(json!(["get", "update", "patch"]))
    );
    assert_eq!(named("secrets", "cp-registration"), Some(json!(["get"])));
    assert_eq!(
        named("configmaps", "vworkspace-applied-jobs"),
        Some(json!(["get", "update"]))
    );
    // Reading is by name only: no rule lists or reads Secrets or ConfigMaps at large.
    for r in rules {
        let core = r["apiGroups"].as_array().unwrap().contains(&json!(""));
        let secretish = r["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "secrets" || x == "configmaps");
        if core && secretish && r["resourceNames"].is_null() {
            assert_eq!(r["verbs"], json!(["create"]), "{r}");
        }
    }
    let workloads = find(&pull, "ClusterRole", "vworkspace-operator-workloads");
    assert!(
        workloads["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["resources"] == json!(["applicationinstances"])
                && r["verbs"] == json!(["create", "delete"])),
        "{workloads}"
    );
    // GitOps mode: none of it.
    let gitops = chart::template(&chart::flux_values());
    let text = serde_json::to_string(&gitops).unwrap();
    for absent in [
        "vworkspace-agent-credentials",
        "vworkspace-applied-jobs",
        "VWORKSPACE_POLL_WAIT",
    ] {
        assert!(!text.contains(absent), "{absent} in GitOps mode");
    }
    // And a GitOps install still needs its repo.
    let mut no_repo = chart::flux_values();
    no_repo["repo"]["url"] = json!("");
    assert!(chart::try_template(&no_repo).is_err());
}

/// `engine: argocd` renders the engine's settings and grants, on the real authorizer, Applications where the
/// workloads role is bound and AppProjects only in Argo CD's namespace; `engine: flux` renders none of it.
/// The RBAC objects are renamed (and bound to an account of another namespace) so that they sit beside the
/// Flux install of `installs_and_grants_least_privilege` on the same API server.
#[tokio::test]
async fn the_argocd_engine_grants_applications_where_gated_and_projects_in_argo_cds_namespace() {
    let mut values = chart::flux_values();
    values["engine"] = json!("argocd");
    values["argocd"] = json!({"namespace": "argo-rbac-cd"});
    let objects = chart::template(&values);
    let env = find(&objects, "Deployment", "vworkspace-operator")["spec"]["template"]["spec"]
        ["containers"][0]["env"]
        .clone();
    let get = |k: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == k)
            .map(|e| e["value"].clone())
    };
    assert_eq!(get("VWORKSPACE_ENGINE"), Some(json!("argocd")));
    assert_eq!(
        get("VWORKSPACE_ARGOCD_NAMESPACE"),
        Some(json!("argo-rbac-cd"))
    );
    let flux = serde_json::to_string(&chart::template(&chart::flux_values())).unwrap();
    assert!(!flux.contains("appprojects") && !flux.contains("\"applications\""));
    let mut bad = chart::flux_values();
    bad["engine"] = json!("argo");
    assert!(chart::try_template(&bad).is_err());

    let admin = testbed::client().await;
    testbed::install_crds(&admin, &testbed::upstream_crds()).await;
    for (ns, gated) in [
        ("argo-rbac-cd", false),
        ("argo-rbac-tenant", true),
        ("argo-rbac-plain", true),
        ("argo-rbac-system", false),
    ] {
        testbed::namespace(&admin, ns, gated).await;
    }
    let renamed = |name: &Value| json!(format!("{}-argo-t", name.as_str().unwrap()));
    let mut rbac: Vec<Value> = objects
        .into_iter()
        .filter(|o| {
            let kind = o["kind"].as_str().unwrap();
            (["ClusterRole", "ClusterRoleBinding"].contains(&kind)
                || (kind == "RoleBinding" && o["metadata"]["namespace"] == "argo-rbac-cd"))
                && o["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("vworkspace-operator")
        })
        .collect();
    let mut binding = yaml_docs(&flux_dir().join("namespace-binding.yaml")).remove(0);
    binding["metadata"]["namespace"] = json!("argo-rbac-tenant");
    rbac.push(binding);
    for obj in &mut rbac {
        obj["metadata"]["name"] = renamed(&obj["metadata"]["name"]);
        if obj["kind"] != "ClusterRole" {
            obj["roleRef"]["name"] = renamed(&obj["roleRef"]["name"]);
            for subject in obj["subjects"].as_array_mut().unwrap() {
                subject["namespace"] = json!("argo-rbac-system");
            }
        }
        testbed::apply(&admin, obj)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", obj["metadata"]["name"]));
    }
    let user = "system:serviceaccount:argo-rbac-system:vworkspace-operator";
    let mut granted = false;
    for _ in 0..300 {
        granted = can(
            &admin,
            user,
            "create",
            "argoproj.io",
            "appprojects",
            Some("argo-rbac-cd"),
            None,
        )
        .await
            && can(
                &admin,
                user,
                "create",
                "argoproj.io",
                "applications",
                Some("argo-rbac-tenant"),
                None,
            )
            .await;
        if granted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(granted, "the Argo CD grants never arrived");
    for (want, verb, resource, ns) in [
        (true, "patch", "applications", Some("argo-rbac-tenant")),
        (true, "delete", "applications", Some("argo-rbac-tenant")),
        (false, "create", "applications", Some("argo-rbac-plain")),
        (true, "list", "applications", None),
        (true, "watch", "appprojects", Some("argo-rbac-cd")),
        (true, "delete", "appprojects", Some("argo-rbac-cd")),
        (false, "create", "appprojects", Some("argo-rbac-tenant")),
        (false, "list", "appprojects", None),
    ] {
        assert_eq!(
            can(&admin, user, verb, "argoproj.io", resource, ns, None).await,
            want,
            "{verb} {resource} in {ns:?}"
        );
    }
}
