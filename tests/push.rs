//! Push mode on the real API server, with the operator as its own process (`run --mode push`): the control plane
//! applies intents as the chart's ServiceAccount `vworkspace-control-plane` (impersonation) with its field
//! manager; the operator acts on what that manager owns and blocks what anyone else changed. The account's RBAC
//! is checked with the API server's own authorizer.
//!
//! Played: helm-controller (no chart can install here), by `support::helm_standin`.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::chart;
use support::helm_standin;
use support::manifests::yaml_docs;
use support::rbac::{can, client_as};
use support::testbed::{self, free_port};
use vworkspace_operator::api::ApplicationInstance;
use vworkspace_operator::trace::{self, OriginInfo, Target};

const CLUSTER: &str = "push-1";
const NS: &str = "push-apps";
const PLAIN: &str = "push-plain";
const CP: &str = "system:serviceaccount:vworkspace-system:vworkspace-control-plane";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_account_applies_intents_and_an_edit_by_anyone_else_is_blocked() {
    let admin = testbed::client().await;
    let mut crds = testbed::project_crds();
    crds.extend(testbed::upstream_crds());
    testbed::install_crds(&admin, &crds).await;
    for (ns, gated) in [("vworkspace-system", false), (NS, true), (PLAIN, false)] {
        testbed::namespace(&admin, ns, gated).await;
    }
    // The chart's Push-mode account and roles, and the per-namespace binding for the gated namespace.
    let mut values = chart::flux_values();
    values["mode"] = json!("push");
    values["clusterId"] = json!(CLUSTER);
    let objects = chart::template(&values);
    let account: Vec<&Value> = objects
        .iter()
        .filter(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("vworkspace-control-plane")
        })
        .collect();
    assert_eq!(
        account.len(),
        4,
        "ServiceAccount, two ClusterRoles, ClusterRoleBinding"
    );
    for o in account {
        testbed::apply(&admin, o).await.unwrap();
    }
    let mut binding =
        yaml_docs(&testbed::project_root().join("flux/push-namespace-binding.yaml")).remove(0);
    binding["metadata"]["namespace"] = json!(NS);
    testbed::apply(&admin, &binding).await.unwrap();

    // The account's access, as the authorizer sees it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !can(
        &admin,
        CP,
        "create",
        "apps.vworkspace.io",
        "applicationinstances",
        Some(NS),
        None,
    )
    .await
    {
        assert!(Instant::now() < deadline, "the binding never took effect");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let table: &[(bool, &str, &str, &str, Option<&str>)] = &[
        (
            true,
            "create",
            "apps.vworkspace.io",
            "applicationinstances",
            Some(NS),
        ),
        (
            true,
            "patch",
            "apps.vworkspace.io",
            "applicationinstances",
            Some(NS),
        ),
        (true, "delete", "ops.vworkspace.io", "operations", Some(NS)),
        (true, "watch", "ops.vworkspace.io", "clusters", None),
        (
            false,
            "create",
            "apps.vworkspace.io",
            "applicationinstances",
            Some(PLAIN),
        ),
        (
            false,
            "patch",
            "apps.vworkspace.io",
            "applicationinstances/status",
            Some(NS),
        ),
        (false, "update", "ops.vworkspace.io", "clusters", None),
        (
            false,
            "create",
            "helm.toolkit.fluxcd.io",
            "helmreleases",
            Some(NS),
        ),
        (false, "create", "", "secrets", Some(NS)),
        (false, "get", "", "secrets", Some("vworkspace-system")),
        (false, "create", "apps", "deployments", Some(NS)),
        (
            false,
            "create",
            "rbac.authorization.k8s.io",
            "rolebindings",
            Some(NS),
        ),
    ];
    let mut wrong = Vec::new();
    for (want, verb, group, resource, ns) in table {
        if can(&admin, CP, verb, group, resource, *ns, None).await != *want {
            wrong.push(format!(
                "{verb} {group}/{resource} in {ns:?}: wanted {want}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // The operator, in Push mode.
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("key");
    let public = support::gitfix::ed25519_key(&key);
    std::fs::write(
        tmp.path().join("policy.yaml"),
        format!("sshAllowedSigners: \"git@example.com {}\"\n", public.trim()),
    )
    .unwrap();
    let log_path = tmp.path().join("operator.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let operator = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
        .env("KUBECONFIG", &testbed::server().kubeconfig)
        .env("RUST_LOG", "info")
        .args([
            "run",
            "--mode",
            "push",
            "--log-format",
            "text",
            "--leader-election",
            "false",
        ])
        .arg(format!("--cluster-id={CLUSTER}"))
        .arg("--policy")
        .arg(tmp.path().join("policy.yaml"))
        .arg("--state-dir")
        .arg(tmp.path().join("state"))
        .arg(format!("--metrics-addr=127.0.0.1:{}", free_port()))
        .arg(format!("--health-addr=127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _operator = Kill(operator);
    let hr = testbed::api_resource(
        &admin,
        &json!({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease"}),
    )
    .await;
    let helm = helm_standin::play(admin.clone(), hr, CLUSTER, "1.0.0", 2);

    let condition = |name: &'static str, type_: &'static str| {
        let admin = admin.clone();
        async move {
            Api::<ApplicationInstance>::namespaced(admin, NS)
                .get_opt(name)
                .await
                .unwrap()?
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == type_)
                .map(|c| (c.status, c.reason, c.message))
        }
    };
    let eventually =
        |what: &'static str, name: &'static str, type_: &'static str, status: &'static str| {
            let log_path = log_path.clone();
            let condition = &condition;
            async move {
                let deadline = Instant::now() + Duration::from_secs(90);
                loop {
                    if let Some(c) = condition(name, type_).await
                        && c.0 == status
                    {
                        return c;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "timed out waiting for {what}\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };

    // The control plane applies an intent with its account and field manager: the operator acts on it.
    let cp = client_as(CP).await;
    let app = |version: &str| -> Value {
        serde_saphyr::from_str(&support::manifests::nextcloud_app(
            CLUSTER,
            NS,
            1,
            version,
            "{greeting: pushed}",
        ))
        .unwrap()
    };
    let cp_apps: Api<ApplicationInstance> = Api::namespaced(cp.clone(), NS);
    cp_apps
        .patch(
            "app-1",
            &PatchParams::apply("vworkspace-odoo").force(),
            &Patch::Apply(app("1.0.0")),
        )
        .await
        .unwrap();
    eventually("app-1 Ready", "app-1", "Ready", "True").await;
    let (_, reason, message) = condition("app-1", "Verified").await.unwrap();
    assert_eq!(reason, "FieldManagerVerified", "{message}");
    assert!(message.contains("vworkspace-odoo"), "{message}");
    // `trace` of a Push intent: the field manager that owns its spec.
    let target = Target::parse(&format!("ApplicationInstance/{NS}/app-1")).unwrap();
    let t = trace::collect(testbed::client().await, &target, &Default::default())
        .await
        .unwrap();
    let OriginInfo::Push {
        field_manager,
        verdict,
        ..
    } = &t.origin
    else {
        panic!("{:?}", t.origin)
    };
    assert_eq!(field_manager.as_deref(), Some("vworkspace-odoo"));
    assert!(
        verdict.starts_with("verified: every spec field"),
        "{verdict}"
    );

    // The same account cannot write where it is not bound.
    let plain: Api<ApplicationInstance> = Api::namespaced(cp.clone(), PLAIN);
    let mut elsewhere = app("1.0.0");
    elsewhere["metadata"]["namespace"] = json!(PLAIN);
    let refused = plain
        .patch(
            "app-1",
            &PatchParams::apply("vworkspace-odoo").force(),
            &Patch::Apply(elsewhere),
        )
        .await;
    assert!(
        matches!(refused, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{refused:?}"
    );

    // An edit by anyone else (here an admin's kubectl edit): Blocked, naming the manager; nothing re-rendered.
    Api::<ApplicationInstance>::namespaced(admin.clone(), NS)
        .patch(
            "app-1",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"chart": {"version": "9.9.9"}}})),
        )
        .await
        .unwrap();
    let (_, reason, message) = eventually("app-1 Blocked", "app-1", "Blocked", "True").await;
    assert_eq!(reason, "SpecMismatch", "{message}");
    assert!(message.contains("kubectl-edit"), "{message}");
    let source = testbed::get(
        &admin,
        "source.toolkit.fluxcd.io/v1",
        "OCIRepository",
        NS,
        "app-1",
    )
    .await
    .unwrap();
    assert_eq!(source["spec"]["ref"]["tag"], "1.0.0");

    // The control plane applies its intent again (taking its fields back): acted on again.
    cp_apps
        .patch(
            "app-1",
            &PatchParams::apply("vworkspace-odoo").force(),
            &Patch::Apply(app("1.0.0")),
        )
        .await
        .unwrap();
    eventually("app-1 unblocked", "app-1", "Blocked", "False").await;
    eventually("app-1 Ready again", "app-1", "Ready", "True").await;

    // The trust policy now names a control-plane key (picked up without a restart): intents must also carry the
    // signature annotation (`sign-intent`). The unsigned app-1 is Blocked; a signed app-2 is acted on; app-2's
    // signature copied onto app-3 is refused.
    let cp_key = tmp.path().join("cp-key");
    let cp_public = support::gitfix::ed25519_key(&cp_key);
    std::fs::write(
        tmp.path().join("policy.yaml"),
        format!(
            "sshAllowedSigners: \"git@example.com {}\"\ncontrolPlaneKeys:\n  - name: cp-push\n    key: \"{}\"\n",
            public.trim(),
            cp_public.trim()
        ),
    )
    .unwrap();
    // The policy change makes every intent be judged again at once.
    let annotate = |n: usize| {
        let mut a: Value = serde_saphyr::from_str(&support::manifests::nextcloud_app(
            CLUSTER,
            NS,
            n,
            "1.0.0",
            "{greeting: signed}",
        ))
        .unwrap();
        a["metadata"]["annotations"] = json!({"touch": format!("{n}")});
        a
    };
    let sign = |obj: &Value| -> Value {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
            .args(["sign-intent", "--cluster-id", CLUSTER, "--key"])
            .arg(&cp_key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), obj.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (_, reason, message) =
        eventually("app-1 Blocked: unsigned", "app-1", "Blocked", "True").await;
    assert_eq!(reason, "IntentUnsigned", "{message}");
    let app2 = sign(&annotate(2));
    cp_apps
        .patch(
            "app-2",
            &PatchParams::apply("vworkspace-odoo").force(),
            &Patch::Apply(&app2),
        )
        .await
        .unwrap();
    eventually("app-2 Ready", "app-2", "Ready", "True").await;
    let (_, _, message) = condition("app-2", "Verified").await.unwrap();
    assert!(
        message.contains("signed by control-plane key cp-push"),
        "{message}"
    );
    let mut app3 = annotate(3);
    app3["metadata"]["annotations"]["push.vworkspace.io/signature"] =
        app2["metadata"]["annotations"]["push.vworkspace.io/signature"].clone();
    cp_apps
        .patch(
            "app-3",
            &PatchParams::apply("vworkspace-odoo").force(),
            &Patch::Apply(&app3),
        )
        .await
        .unwrap();
    let (_, reason, message) = eventually("app-3 Blocked", "app-3", "Blocked", "True").await;
    assert_eq!(reason, "IntentSignatureInvalid", "{message}");
    helm.abort();
}
