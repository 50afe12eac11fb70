//! The deploy manifests in flux/: they parse, agree with each other, install on the real API server
//! (the test bed, with the upstream Flux CRDs), and give the operator exactly the access docs/install.md
//! describes — checked by the API server's own RBAC authorizer (SubjectAccessReview) and by real requests
//! made as the operator's ServiceAccount (impersonation).

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};
use support::manifests::{build, yaml_docs};
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
    no  create core/secrets                               tenant-gated
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

fn flux_objects() -> Vec<Value> {
    build(&flux_dir()).0
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
    let (objects, files) = build(&flux_dir());
    // Every YAML file in flux/ is used, except the per-namespace template.
    let used: BTreeSet<PathBuf> = files.iter().map(|f| f.canonicalize().unwrap()).collect();
    for entry in std::fs::read_dir(flux_dir()).unwrap() {
        let path = entry.unwrap().path().canonicalize().unwrap();
        if path.file_name().unwrap() == "namespace-binding.yaml" {
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
    // The CRDs in the build are the ones generated from the Rust types.
    let built: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    let from_types: Vec<Value> = vworkspace_operator::api::crds()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(built.len(), from_types.len());
    for crd in from_types {
        let name = &crd["metadata"]["name"];
        let on_disk = built
            .iter()
            .find(|b| &b["metadata"]["name"] == name)
            .unwrap();
        assert_eq!(on_disk["spec"], crd["spec"], "{name}");
    }

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

#[test]
fn cluster_values_agree_and_the_deployment_is_locked_down() {
    let objects = flux_objects();
    let config = &find(&objects, "ConfigMap", "vworkspace-operator-config")["data"];
    let cluster_id = config["VWORKSPACE_CLUSTER_ID"].as_str().unwrap();
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
    assert_eq!(sync["spec"]["prune"], true);
    let repo = find(&objects, "GitRepository", "vworkspace-cluster-repo");
    assert_eq!(repo["spec"]["url"], config["VWORKSPACE_REPO_URL"]);
    assert_eq!(repo["spec"]["ref"]["branch"], config["VWORKSPACE_BRANCH"]);
    assert_eq!(repo["spec"]["verify"]["mode"], "HEAD");
    assert_eq!(sync["spec"]["sourceRef"]["name"], repo["metadata"]["name"]);
    assert_eq!(
        config["VWORKSPACE_NAMESPACE_SELECTOR"],
        vworkspace_operator::api::labels::DEFAULT_NAMESPACE_SELECTOR
    );

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
    assert_eq!(
        c["envFrom"][0]["configMapRef"]["name"],
        "vworkspace-operator-config"
    );
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
    // flux/admission.yaml is generated: it matches the Rust code that makes it.
    assert_eq!(
        std::fs::read_to_string(flux_dir().join("admission.yaml")).unwrap(),
        vworkspace_operator::cli::crdgen::admission_yaml().unwrap(),
        "flux/admission.yaml is out of date: run `cargo run -- crdgen --out-dir crds --admission-file flux/admission.yaml`"
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
    let mut set: Vec<String> = config.as_object().unwrap().keys().cloned().collect();
    set.extend(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string()),
    );
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

    let svc = find(&objects, "Service", "vworkspace-operator-metrics");
    assert_eq!(svc["spec"]["selector"], spec["selector"]["matchLabels"]);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
}

// ------------------------------------------------------------------------------------------------------
// On the real API server

/// A client that acts as `user` (with the groups of a ServiceAccount), through impersonation.
async fn client_as(user: &str) -> Client {
    let path = &testbed::server().kubeconfig;
    let kubeconfig = Kubeconfig::read_from(path).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(user.to_string());
    config.auth_info.impersonate_groups = Some(sa_groups(user));
    Client::try_from(config).unwrap()
}

fn sa_groups(user: &str) -> Vec<String> {
    let ns = user.split(':').nth(2).unwrap();
    vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{ns}"),
        "system:authenticated".into(),
    ]
}

/// Whether the API server's authorizer lets `user` do `verb` on `group/resource[/sub]` in `ns`.
async fn can(
    client: &Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(sa_groups(user)),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: ns.map(Into::into),
                name: name.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let got = api.create(&PostParams::default(), &sar).await.unwrap();
    got.status.expect("SAR status").allowed
}

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
    let objects = flux_objects();
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
    let all_hr: Api<DynamicObject> = Api::all_with(operator.clone(), &hr_ar);
    assert_eq!(
        all_hr
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
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
