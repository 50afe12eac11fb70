//! The render engine and the `render` command on the examples, the invalid examples, hostile templates and
//! real git revisions. Rendered objects are checked against the upstream CRD schemas of the test bed's pinned
//! modules (`testbed/testbed.sh crds`).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vworkspace_operator::intent::SourceFile;
use vworkspace_operator::intent::source::load_dir;
use vworkspace_operator::render::{Limits, RenderOptions, Renderer, Templates};
use vworkspace_operator::schema::validate_object;
use vworkspace_operator::tree::render_tree;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn renderer() -> Renderer {
    Renderer::new(
        Templates::embedded(),
        RenderOptions {
            cluster_id: Some("eu-prod-1".into()),
            ..RenderOptions::default()
        },
    )
}

fn examples() -> Vec<SourceFile> {
    load_dir(&root().join("examples/cluster-repo")).unwrap()
}

/// (group, kind) → openAPIV3Schema of the served storage version, from the test bed's upstream CRDs.
fn upstream_schemas() -> BTreeMap<(String, String), Value> {
    let dir = support::testbed::upstream_crds_dir();
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let group = crd["spec"]["group"].as_str().unwrap().to_string();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        let version = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["storage"] == Value::Bool(true))
            .unwrap();
        out.insert((group, kind), version["schema"]["openAPIV3Schema"].clone());
    }
    out
}

#[test]
fn examples_render_without_problems_and_cover_every_engine() {
    let result = render_tree(&examples(), &renderer(), Some("eu-prod-1"));
    assert!(result.problems.is_empty(), "{:#?}", result.problems);
    assert!(
        result.intents.len() >= 8,
        "at least 8 intents, got {}",
        result.intents.len()
    );
    let kinds: Vec<String> = result
        .objects()
        .map(|o| {
            format!(
                "{}/{}",
                o["apiVersion"].as_str().unwrap(),
                o["kind"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "helm.toolkit.fluxcd.io/v2/HelmRelease",
        "source.toolkit.fluxcd.io/v1/OCIRepository",
        "source.toolkit.fluxcd.io/v1/HelmRepository",
        "velero.io/v1/Backup",
        "velero.io/v1/Restore",
        "argoproj.io/v1alpha1/Workflow",
        "batch/v1/Job",
        "snapshot.storage.k8s.io/v1/VolumeSnapshot",
        "volsync.backube/v1alpha1/ReplicationSource",
    ] {
        assert!(
            kinds.iter().any(|k| k == expected),
            "no {expected} rendered; got {kinds:?}"
        );
    }
    // Placeholder mode renders nothing.
    let wiki = result
        .intents
        .iter()
        .find(|i| i.key.name == "wiki")
        .unwrap();
    assert!(wiki.objects.is_empty());
}

#[test]
fn every_rendered_object_validates_against_the_upstream_crds() {
    let schemas = upstream_schemas();
    let mut checked = 0;
    let mut failures = Vec::new();
    // The examples plus a ReplicationDestination (the volsync engine's other direction).
    let mut files = examples();
    files.push(SourceFile {
        path: "clusters/eu-prod-1/namespaces/team-beta/operation-restore-side.yaml".into(),
        data: br#"
apiVersion: ops.vworkspace.io/v1alpha1
kind: Operation
metadata:
  name: vaultwarden-replicate-in
  namespace: team-beta
  labels: {app.vworkspace.io/managed-by: control-plane, app.vworkspace.io/cluster-id: eu-prod-1}
spec:
  targetRef: {apiVersion: apps.vworkspace.io/v1alpha1, kind: ApplicationInstance, name: vaultwarden}
  type: Replicate
  engine: volsync
  parameters: {direction: destination, pvc: vaultwarden-data, repository: vaultwarden-restic}
"#
        .to_vec(),
    });
    let result = render_tree(&files, &renderer(), Some("eu-prod-1"));
    assert!(result.problems.is_empty(), "{:#?}", result.problems);
    for obj in result.objects() {
        let api_version = obj["apiVersion"].as_str().unwrap();
        let kind = obj["kind"].as_str().unwrap().to_string();
        let group = api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
            .to_string();
        if group == "batch" {
            continue; // built-in kind: checked by the real API server in tests/apiserver.rs
        }
        let schema = schemas
            .get(&(group.clone(), kind.clone()))
            .unwrap_or_else(|| panic!("no upstream CRD for {group}/{kind}"));
        for v in validate_object(obj, schema) {
            failures.push(format!("{kind}/{}: {v}", obj["metadata"]["name"]));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(checked >= 14, "checked {checked}");
    assert!(
        result
            .objects()
            .any(|o| o["kind"] == "ReplicationDestination")
    );
}

#[test]
fn the_examples_match_the_golden_rendering() {
    let result = render_tree(&examples(), &renderer(), Some("eu-prod-1"));
    let got = vworkspace_operator::cli::render::to_yaml(&result).unwrap();
    let path = root().join("tests/golden/cluster-repo.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        got == want,
        "rendering changed; review and run `UPDATE_GOLDEN=1 cargo test --test render` to accept:\n{}",
        similar::TextDiff::from_lines(&want, &got)
            .unified_diff()
            .header("golden", "rendered")
    );
}

#[test]
fn values_from_secrets_and_configmaps_are_referenced_never_copied() {
    let result = render_tree(&examples(), &renderer(), Some("eu-prod-1"));
    let hr = |name: &str| {
        result
            .objects()
            .find(|o| o["kind"] == "HelmRelease" && o["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    let vw = hr("vaultwarden");
    assert_eq!(
        vw["spec"]["valuesFrom"],
        serde_json::json!([{"kind": "Secret", "name": "vaultwarden-values", "valuesKey": "values.yaml"}])
    );
    let mm = hr("mattermost");
    assert_eq!(mm["spec"]["valuesFrom"][0]["kind"], "ConfigMap");
    // OCI: chartRef to an OCIRepository whose url keeps oci:// and whose tag is the version.
    let nc = hr("nextcloud");
    assert_eq!(nc["spec"]["chartRef"]["kind"], "OCIRepository");
    assert_eq!(nc["spec"]["upgrade"]["remediation"]["retries"], 1);
    assert_eq!(nc["spec"]["maxHistory"], 10);
    assert_eq!(nc["spec"]["rollback"]["timeout"], "5m");
    // Inline values win over the catalog's integration values; integration values are present.
    assert_eq!(nc["spec"]["values"]["replicaCount"], 2);
    assert_eq!(nc["spec"]["values"]["ingress"]["enabled"], true);
    assert_eq!(
        nc["spec"]["values"]["nextcloud"]["host"],
        "cloud.alpha.example.com"
    );
    let oci = result
        .objects()
        .find(|o| o["kind"] == "OCIRepository" && o["metadata"]["name"] == "nextcloud")
        .unwrap();
    assert_eq!(oci["spec"]["url"], "oci://ghcr.io/nextcloud/helm/nextcloud");
    assert_eq!(oci["spec"]["ref"]["tag"], "6.6.4");
    for o in result.objects() {
        let labels = &o["metadata"]["labels"];
        assert_eq!(
            labels["app.vworkspace.io/managed-by"], "vworkspace-operator",
            "{o}"
        );
        assert_eq!(labels["app.vworkspace.io/cluster-id"], "eu-prod-1", "{o}");
        assert!(
            labels["app.vworkspace.io/application-instance"].is_string(),
            "{o}"
        );
    }
}

#[test]
fn jobs_run_under_the_restricted_profile() {
    let result = render_tree(&examples(), &renderer(), Some("eu-prod-1"));
    let jobs: Vec<&Value> = result.objects().filter(|o| o["kind"] == "Job").collect();
    assert_eq!(jobs.len(), 2);
    for job in jobs {
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["serviceAccountName"], "vworkspace-operation-runner");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let c = &pod["containers"][0]["securityContext"];
        assert_eq!(c["allowPrivilegeEscalation"], false);
        assert_eq!(c["readOnlyRootFilesystem"], true);
        assert_eq!(c["runAsUser"], 65532);
        assert_eq!(c["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 86400);
    }
}

#[test]
fn the_upgrade_operation_renders_the_applications_own_objects_at_the_new_version() {
    let result = render_tree(&examples(), &renderer(), Some("eu-prod-1"));
    let upgrade = result
        .intents
        .iter()
        .find(|i| i.key.name == "nextcloud-upgrade-6-7")
        .unwrap();
    let app = result
        .intents
        .iter()
        .find(|i| i.key.name == "nextcloud")
        .unwrap();
    let kinds: Vec<&str> = upgrade
        .objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["OCIRepository", "HelmRelease"]);
    // Same objects (names, labels) as the ApplicationInstance's, only the version and values differ.
    for (u, a) in upgrade.objects.iter().zip(&app.objects) {
        assert_eq!(u["metadata"], a["metadata"]);
    }
    assert_eq!(upgrade.objects[0]["spec"]["ref"]["tag"], "6.7.0");
    assert!(upgrade.objects[1]["spec"]["values"]["nextcloud"]["phpConfigs"].is_object());
    assert_eq!(upgrade.objects[1]["spec"]["values"]["replicaCount"], 2);
}

#[test]
fn invalid_examples_report_every_expected_problem_and_render_nothing_else() {
    let dir = root().join("examples/invalid");
    let files = load_dir(&dir).unwrap();
    let result = render_tree(&files, &renderer(), Some("eu-prod-1"));
    let messages: Vec<String> = result.problems.iter().map(ToString::to_string).collect();
    let mut expected_count = 0;
    for file in &files {
        let text = String::from_utf8_lossy(&file.data);
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(!expects.is_empty(), "{} has no # expect: lines", file.path);
        for e in expects {
            expected_count += 1;
            assert!(
                messages
                    .iter()
                    .any(|m| m.starts_with(&file.path) && m.contains(e)),
                "{}: expected a problem containing {e:?}; got:\n{}",
                file.path,
                messages.join("\n")
            );
        }
    }
    assert!(expected_count >= 20);
    let rendered: Vec<String> = result.intents.iter().map(|i| i.key.to_string()).collect();
    assert_eq!(rendered, ["ApplicationInstance/team-alpha/target-app"]);
}

fn app_doc(catalog: &str) -> SourceFile {
    SourceFile {
        path: "clusters/eu-prod-1/namespaces/team-alpha/app.yaml".into(),
        data: format!(
            "apiVersion: apps.vworkspace.io/v1alpha1\nkind: ApplicationInstance\nmetadata:\n  name: x\n  namespace: team-alpha\n  labels: {{app.vworkspace.io/managed-by: control-plane, app.vworkspace.io/cluster-id: eu-prod-1}}\nspec:\n  appRef: {{catalogId: {catalog}}}\n  chart: {{sourceType: oci, url: 'oci://r.example.com/c', name: x, version: 1.0.0}}\n  release: {{name: x, namespace: team-alpha}}\n  values: {{source: inline, inline: {{a: 1}}}}\n  integrations: {{ingress: {{enabled: true, host: x.example.com}}}}\n"
        )
        .into_bytes(),
    }
}

/// Render one app with the catalog template `catalog/hostile/values.yaml.j2` replaced by `source`.
fn render_with_catalog(source: &str, limits: Limits) -> Vec<String> {
    let mut templates = Templates::embedded();
    templates.insert("catalog/hostile/values.yaml.j2", source);
    let renderer = Renderer::new(
        templates,
        RenderOptions {
            cluster_id: Some("eu-prod-1".into()),
            limits,
            ..RenderOptions::default()
        },
    );
    render_tree(&[app_doc("hostile")], &renderer, Some("eu-prod-1"))
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn broken_and_hostile_templates_give_errors_not_panics_or_hangs() {
    let limits = Limits::default();
    let cases: &[(&str, &str, &str)] = &[
        ("undefined variable", "a: {{ nope }}", "undefined"),
        ("syntax error", "a: {% if %}", "syntax error"),
        (
            "endless loop",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "fuel",
        ),
        (
            "deep recursion",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "recursion",
        ),
        (
            "huge output",
            "a: {{ 'x' * 5000000 }}",
            "output exceeds the limit",
        ),
        (
            "not a mapping",
            "- a\n- b",
            "must render exactly one YAML mapping",
        ),
        ("not YAML", "a: [", "not valid YAML"),
        ("fail()", "{{ fail('no such thing') }}", "no such thing"),
    ];
    for (name, source, expected) in cases {
        let problems = render_with_catalog(source, limits);
        assert!(
            problems.len() == 1
                && problems[0]
                    .to_lowercase()
                    .contains(&expected.to_lowercase()),
            "{name}: expected one problem containing {expected:?}, got {problems:#?}"
        );
    }
}

#[test]
fn templates_cannot_escape_their_kinds_or_namespace() {
    let cases: &[(&str, &str)] = &[
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: pwn}\n",
            "ClusterRoleBinding (rbac.authorization.k8s.io/v1) may not be rendered here",
        ),
        (
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: x, namespace: kube-system}\nspec: {}\n",
            "namespace \"kube-system\" is not allowed",
        ),
        (
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: Not_Valid}\n",
            "is not a valid DNS subdomain name",
        ),
    ];
    for (source, expected) in cases {
        let mut templates = Templates::embedded();
        templates.insert("application/helmrelease.yaml.j2", *source);
        let renderer = Renderer::new(templates, RenderOptions::default());
        let problems: Vec<String> =
            render_tree(&[app_doc("nextcloud")], &renderer, Some("eu-prod-1"))
                .problems
                .iter()
                .map(ToString::to_string)
                .collect();
        assert!(
            problems.len() == 1 && problems[0].contains(expected),
            "expected {expected:?}, got {problems:#?}"
        );
    }
}

#[test]
fn a_template_directory_overrides_the_embedded_templates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("application")).unwrap();
    std::fs::write(
        dir.path().join("application/source-oci.yaml.j2"),
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata: {name: {{ source.name | tojson }}}\nspec: {interval: 1m, url: {{ source.url | tojson }}, ref: {tag: {{ chart.version | tojson }}}}\n",
    )
    .unwrap();
    let renderer = Renderer::new(
        Templates::with_overrides(dir.path()).unwrap(),
        RenderOptions::default(),
    );
    let result = render_tree(&[app_doc("nextcloud")], &renderer, Some("eu-prod-1"));
    assert!(result.problems.is_empty(), "{:?}", result.problems);
    let oci = result
        .objects()
        .find(|o| o["kind"] == "OCIRepository")
        .unwrap();
    assert_eq!(oci["spec"]["interval"], "1m");
}

// ---- the CLI, on directories and on real git revisions ----

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Control Plane")
        .env("GIT_AUTHOR_EMAIL", "cp@example.com")
        .env("GIT_COMMITTER_NAME", "Control Plane")
        .env("GIT_COMMITTER_EMAIL", "cp@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn cli_exit_codes_and_problem_format() {
    let out = bin()
        .args(["render", "--dir"])
        .arg(root().join("examples/cluster-repo"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("kind: HelmRelease"));

    let out = bin()
        .args(["render", "--cluster-id", "eu-prod-1", "--dir"])
        .arg(root().join("examples/invalid"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad-source-type.yaml: ApplicationInstance/team-alpha/bad-source: spec.chart.sourceType: \"git\" is not one of"),
        "{stderr}"
    );
    assert!(
        stderr.lines().filter(|l| l.contains(": ")).count() >= 20,
        "{stderr}"
    );

    let out = bin()
        .args(["render", "--output", "json", "--dir"])
        .arg(root().join("examples/cluster-repo"))
        .output()
        .unwrap();
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list.len() >= 14);

    for usage in [
        vec!["render"],
        vec!["render", "--repo", "."],
        vec!["render", "--dir", ".", "--output", "xml"],
    ] {
        let out = bin().args(&usage).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{usage:?}");
    }
}

/// `render --policy`: the policy's charts section in the rendered chart sources, and its refusals as problems.
#[test]
fn cli_renders_chart_verification_from_the_trust_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("signer");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let ssh = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let cosign = "-----BEGIN PUBLIC KEY-----\n\
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEe/FgJb/9Qsb+1rObZAHvtYgW+O/4\n\
        tW2YR2J74p91ZJ3eGAlr12GjU1CawDQVV8ApBK2l/aJwzn7nAET3FJHK6A==\n\
        -----END PUBLIC KEY-----\n";
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "sshAllowedSigners: |\n  cp@example.com {}\ncharts:\n  rules:\n    - prefix: oci://registry.example.com/charts\n      cosignKeys:\n        - name: release\n          key: {:?}\n    - prefix: https://charts.example.com\n      cosignKeys:\n        - name: release\n          key: {:?}\n",
            ssh.trim(),
            cosign,
            cosign
        ),
    )
    .unwrap();
    let app = |name: &str, source: &str, url: &str| {
        format!(
            "apiVersion: apps.vworkspace.io/v1alpha1\nkind: ApplicationInstance\nmetadata:\n  name: {name}\n  namespace: team-a\n  labels: {{app.vworkspace.io/managed-by: control-plane, app.vworkspace.io/cluster-id: c1}}\nspec:\n  appRef: {{catalogId: wiki}}\n  chart: {{sourceType: {source}, url: \"{url}\", name: wiki, version: 1.2.3}}\n  release: {{name: {name}, namespace: team-a}}\n  values: {{source: inline, inline: {{}}}}\n"
        )
    };
    let dir = tmp.path().join("intents");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("signed.yaml"),
        app("signed", "oci", "oci://registry.example.com/charts"),
    )
    .unwrap();
    let render = |extra: &[&str]| {
        bin()
            .args(["render", "--cluster-id", "c1", "--output", "json", "--dir"])
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap()
    };
    // Without the policy: unverified. With it: the OCIRepository verifies, and the Secret of keys is rendered.
    let plain: Vec<Value> = serde_json::from_slice(&render(&[]).stdout).unwrap();
    assert!(
        plain
            .iter()
            .all(|o| o["spec"].get("verify").is_none() && o["kind"] != "Secret")
    );
    let out = render(&["--policy", policy.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let oci = objects
        .iter()
        .find(|o| o["kind"] == "OCIRepository")
        .unwrap();
    let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
    assert_eq!(
        oci["spec"]["verify"]["secretRef"]["name"],
        secret["metadata"]["name"]
    );
    assert!(secret["data"]["release.pub"].is_string(), "{secret}");

    // A Helm repository chart under a signature rule, and a chart no rule covers: refused, naming the field.
    std::fs::write(
        dir.join("helm.yaml"),
        app("helm", "helm", "https://charts.example.com"),
    )
    .unwrap();
    std::fs::write(
        dir.join("elsewhere.yaml"),
        app("elsewhere", "oci", "oci://other.example.com/x"),
    )
    .unwrap();
    let out = render(&["--policy", policy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ApplicationInstance/team-a/helm: spec.chart.url: the trust policy requires cosign signatures"), "{stderr}");
    assert!(
        stderr.contains("a Helm repository (https://) chart cannot be verified"),
        "{stderr}"
    );
    assert!(stderr.contains("ApplicationInstance/team-a/elsewhere: spec.chart.url: no rule of the trust policy's charts section covers oci://other.example.com/x/wiki"), "{stderr}");
}

#[test]
fn cli_renders_revisions_from_git_objects_and_diffs_them() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    copy_dir(&root().join("examples/cluster-repo"), &repo);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "intent"]);
    let nc =
        repo.join("clusters/eu-prod-1/namespaces/team-alpha/applicationinstance-nextcloud.yaml");
    let text = std::fs::read_to_string(&nc)
        .unwrap()
        .replace("version: 6.6.4", "version: 6.6.5");
    std::fs::write(&nc, text).unwrap();
    git(&repo, &["commit", "-qam", "bump nextcloud"]);
    // The work tree is not read: change it without committing.
    std::fs::write(&nc, "garbage: [").unwrap();

    let out = bin()
        .args(["render", "--repo"])
        .arg(&repo)
        .args(["--rev", "HEAD", "--cluster-id", "eu-prod-1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tag: \"6.6.5\""), "{stdout}");

    let out = bin()
        .args(["render", "--repo"])
        .arg(&repo)
        .args(["--diff", "HEAD~1..HEAD"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        diff.contains("-    tag: \"6.6.4\"") && diff.contains("+    tag: \"6.6.5\""),
        "{diff}"
    );
    assert!(diff.starts_with("--- a/HEAD~1\n+++ b/HEAD\n"), "{diff}");

    // A symlink in the reviewed tree is refused.
    std::os::unix::fs::symlink(
        "/etc/passwd",
        repo.join("clusters/eu-prod-1/namespaces/team-alpha/link.yaml"),
    )
    .unwrap();
    git(&repo, &["checkout", "-q", "--", "."]);
    git(
        &repo,
        &["add", "clusters/eu-prod-1/namespaces/team-alpha/link.yaml"],
    );
    git(&repo, &["commit", "-qm", "sneaky link"]);
    let out = bin()
        .args(["render", "--repo"])
        .arg(&repo)
        .args(["--rev", "HEAD"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("link.yaml: refused: symbolic link"),
        "{stderr}"
    );
}

#[test]
fn version_names_the_git_revision_it_was_built_from() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vworkspace-operator"))
        .arg("--version")
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let head = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let revision = std::env::var("VWO_GIT_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or(head)
        .unwrap_or_else(|| "unknown".into());
    assert_eq!(
        line.trim(),
        format!(
            "vworkspace-operator {} (git {revision})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// A random string built from pieces that mean something to YAML, Jinja, JSON, shells and Kubernetes.
fn hostile(rng: &mut fastrand::Rng) -> String {
    const PIECES: &[&str] = &[
        "\"",
        "'",
        "\n",
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        ": ",
        "- ",
        "#",
        "&a",
        "*a",
        "!!str",
        "|",
        ">",
        "\\",
        "---",
        "kind: Namespace",
        "namespace: kube-system",
        "name: x",
        "$(id)",
        "${HOME}",
        "é",
        "\u{202e}",
        "\0",
        "\t",
        "}}{{ 7*7 }}",
        "\"}, \"namespace\": \"kube-system",
        "labels",
        "app.vworkspace.io/cluster-id",
        "a",
        "b",
        "-",
        ".",
        "/",
        "0",
        "9",
        " ",
    ];
    (0..rng.usize(0..8))
        .map(|_| PIECES[rng.usize(..PIECES.len())])
        .collect()
}

fn hostile_value(rng: &mut fastrand::Rng, depth: usize) -> Value {
    match rng.usize(0..if depth > 2 { 3 } else { 5 }) {
        0 => Value::String(hostile(rng)),
        1 => serde_json::json!(rng.i64(..)),
        2 => Value::Bool(rng.bool()),
        3 => Value::Array(
            (0..rng.usize(0..3))
                .map(|_| hostile_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.usize(0..4))
                .map(|_| (hostile(rng), hostile_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// What a rendered object is, as opposed to what it holds: kind, namespace, name, labels.
fn identities(objects: impl Iterator<Item = Value>) -> Vec<Value> {
    objects
        .map(|o| {
            serde_json::json!([
                o["apiVersion"],
                o["kind"],
                o["metadata"]["namespace"],
                o["metadata"]["name"],
                o["metadata"]["labels"]
            ])
        })
        .collect()
}

/// #17 item 4, as a property: whatever the free fields of a signed, valid intent hold (values, annotations,
/// Operation parameters, the catalog id, the ingress host), the rendered objects' kinds, namespaces, names and
/// labels are those of the same intent with plain values. Invalid variations must be refused, not rendered.
#[test]
fn no_field_value_changes_what_a_rendered_object_is() {
    let renderer = renderer();
    let seed = std::env::var("PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let app = |values: Value, annotations: Value, catalog: &str, host: Value| {
        serde_json::json!({
            "apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
            "metadata": {"name": "web", "namespace": "team-a", "annotations": annotations, "labels": {
                "app.vworkspace.io/managed-by": "control-plane", "app.vworkspace.io/cluster-id": "eu-prod-1"}},
            "spec": {"appRef": {"catalogId": catalog},
                     "chart": {"sourceType": "oci", "url": "oci://ghcr.io/nextcloud/helm", "name": "nextcloud",
                               "version": "6.6.4"},
                     "release": {"name": "web", "namespace": "team-a"},
                     "values": {"source": "inline", "inline": values},
                     "integrations": {"ingress": {"enabled": true, "host": host}}}
        })
    };
    let op = |params: Value| {
        serde_json::json!({
            "apiVersion": "ops.vworkspace.io/v1alpha1", "kind": "Operation",
            "metadata": {"name": "cmd", "namespace": "team-a", "labels": {
                "app.vworkspace.io/managed-by": "control-plane", "app.vworkspace.io/cluster-id": "eu-prod-1"}},
            "spec": {"targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance",
                                   "name": "web"},
                     "type": "RunCommand", "engine": "job", "parameters": params}
        })
    };
    let capability = serde_json::json!({"ops.vworkspace.io/runcommand": "job"});
    let render = |docs: &[Value]| {
        let files: Vec<SourceFile> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| SourceFile {
                path: format!("clusters/eu-prod-1/namespaces/team-a/intent-{i}.yaml"),
                data: serde_json::to_vec(d).unwrap(),
            })
            .collect();
        render_tree(&files, &renderer, Some("eu-prod-1"))
    };
    let plain = render(&[
        app(
            serde_json::json!({"replicaCount": 1}),
            capability.clone(),
            "nextcloud",
            serde_json::json!("cloud.example.com"),
        ),
        op(serde_json::json!({"image": "busybox", "command": ["true"]})),
    ]);
    assert!(plain.problems.is_empty(), "{:?}", plain.problems);
    let expected: BTreeMap<String, Vec<Value>> = plain
        .intents
        .iter()
        .map(|i| (i.key.to_string(), identities(i.objects.iter().cloned())))
        .collect();
    assert_eq!(expected.len(), 2);
    let (mut rendered, mut refused) = (0, 0);
    for round in 0..1500 {
        let mut annotations = capability.clone();
        for _ in 0..rng.usize(0..3) {
            annotations[hostile(&mut rng)] = Value::String(hostile(&mut rng));
        }
        let catalog = if rng.bool() {
            "nextcloud".to_string()
        } else {
            hostile(&mut rng)
        };
        let host = if rng.bool() {
            serde_json::json!("cloud.example.com")
        } else {
            Value::String(hostile(&mut rng))
        };
        let mut params =
            serde_json::json!({"image": hostile(&mut rng), "command": [hostile(&mut rng)]});
        if rng.bool() {
            params["args"] =
                Value::Array((0..3).map(|_| Value::String(hostile(&mut rng))).collect());
        }
        if rng.bool() {
            params["env"] = Value::Object(
                (0..3)
                    .map(|_| (hostile(&mut rng), Value::String(hostile(&mut rng))))
                    .collect(),
            );
        }
        let values = Value::Object(
            (0..rng.usize(0..5))
                .map(|_| (hostile(&mut rng), hostile_value(&mut rng, 0)))
                .collect(),
        );
        let result = render(&[app(values, annotations, &catalog, host), op(params)]);
        refused += 2 - result.intents.len();
        for intent in &result.intents {
            let key = intent.key.to_string();
            rendered += 1;
            assert!(
                !result.problems.iter().any(|p| p.object == key),
                "seed {seed}, round {round}: {key} rendered despite its problems"
            );
            assert_eq!(
                identities(intent.objects.iter().cloned()),
                expected[&key],
                "seed {seed}, round {round}: {key}'s rendered identities changed"
            );
        }
    }
    eprintln!("seed {seed}: {rendered} rendered with their identities intact, {refused} refused");
    assert!(
        rendered >= 100,
        "seed {seed}: only {rendered} of 1500 variations rendered"
    );
}

/// A target allowing every engine, and one Operation of `type_`/`engine` with `params`, in team-alpha.
fn tenancy_docs(type_: &str, engine: &str, params: &str) -> Vec<SourceFile> {
    let dir = "clusters/eu-prod-1/namespaces/team-alpha";
    let labels =
        "{app.vworkspace.io/managed-by: control-plane, app.vworkspace.io/cluster-id: eu-prod-1}";
    let app = format!(
        "apiVersion: apps.vworkspace.io/v1alpha1\nkind: ApplicationInstance\nmetadata:\n  name: app\n  namespace: team-alpha\n  labels: {labels}\n  annotations: {{ops.vworkspace.io/backup: velero, ops.vworkspace.io/restore: velero, ops.vworkspace.io/upgrade: helm, ops.vworkspace.io/migration: helmHookJob, ops.vworkspace.io/runcommand: job, ops.vworkspace.io/runbook: workflow, ops.vworkspace.io/snapshot: snapshot, ops.vworkspace.io/replicate: volsync}}\nspec:\n  appRef: {{catalogId: nextcloud}}\n  chart: {{sourceType: oci, url: 'oci://r.example.com/c', name: app, version: 1.0.0}}\n  release: {{name: app, namespace: team-alpha}}\n  values: {{source: inline, inline: {{a: 1}}}}\n"
    );
    let op = format!(
        "apiVersion: ops.vworkspace.io/v1alpha1\nkind: Operation\nmetadata:\n  name: op-1\n  namespace: team-alpha\n  labels: {labels}\nspec:\n  targetRef: {{apiVersion: apps.vworkspace.io/v1alpha1, kind: ApplicationInstance, name: app}}\n  type: {type_}\n  engine: {engine}\n  parameters: {params}\n  approvals: {{required: true, claim: vws1.e30.00}}\n"
    );
    vec![
        SourceFile {
            path: format!("{dir}/app.yaml"),
            data: app.into_bytes(),
        },
        SourceFile {
            path: format!("{dir}/op.yaml"),
            data: op.into_bytes(),
        },
    ]
}

#[test]
fn operations_cannot_reach_another_namespace_through_any_engine() {
    // (type, engine, override of operation/<type>.<engine>.yaml.j2 or none, parameters, expected problem)
    let cases: &[(&str, &str, Option<&str>, &str, &str)] = &[
        (
            "Restore",
            "velero",
            None,
            "{backupName: team-beta-nightly, namespaceMapping: {team-beta: team-alpha}}",
            "spec.parameters.namespaceMapping.team-beta: team-beta is outside the Operation's namespace team-alpha (rendered as Restore velero/team-alpha-op-1 spec.includedNamespaces[0])",
        ),
        (
            "Restore",
            "velero",
            None,
            "{backupName: team-beta-nightly}",
            "spec.parameters.backupName: team-beta-nightly is not a backup made for namespace team-alpha",
        ),
        (
            "Restore",
            "velero",
            None,
            "{backupName: team-alpha-x, namespaceMapping: {team-alpha: team-beta}}",
            "spec.parameters.namespaceMapping.team-alpha: team-beta is outside the Operation's namespace team-alpha",
        ),
        (
            "Backup",
            "velero",
            Some(
                "apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: {{ veleroChildName }}}\nspec:\n  includedNamespaces: [{{ params.storageLocation | tojson }}]\n",
            ),
            "{storageLocation: team-beta}",
            "spec.parameters.storageLocation: team-beta is outside the Operation's namespace team-alpha",
        ),
        (
            "Backup",
            "velero",
            Some(
                "apiVersion: velero.io/v1\nkind: Backup\nmetadata: {name: {{ veleroChildName }}}\nspec: {storageLocation: default}\n",
            ),
            "{}",
            "spec.engine: must list the Operation's namespace team-alpha: Velero reads no list as every namespace",
        ),
        (
            "Runbook",
            "workflow",
            Some(
                "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: {{ childName }}}\nspec:\n  workflowTemplateRef: {name: maintenance, namespace: {{ params.workflowTemplate | tojson }}}\n",
            ),
            "{workflowTemplate: team-beta}",
            "spec.parameters.workflowTemplate: team-beta is outside the Operation's namespace team-alpha",
        ),
        (
            "Runbook",
            "workflow",
            Some(
                "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {name: {{ childName }}}\nspec:\n  clusterWorkflowTemplateRef: {name: {{ params.workflowTemplate | tojson }}}\n",
            ),
            "{workflowTemplate: shared}",
            "spec.engine: names a ClusterWorkflowTemplate, which no namespace owns",
        ),
        (
            "Snapshot",
            "snapshot",
            Some(
                "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata: {name: {{ childName }}}\nspec:\n  source: {volumeSnapshotContentName: {{ params.pvc | tojson }}}\n",
            ),
            "{pvc: content-of-team-beta}",
            "spec.parameters.pvc: names a VolumeSnapshotContent, which no namespace owns",
        ),
        (
            "Replicate",
            "volsync",
            Some(
                "apiVersion: volsync.backube/v1alpha1\nkind: ReplicationSource\nmetadata: {name: {{ childName }}}\nspec:\n  sourcePVC: data\n  restic: {repository: {{ params.repository | tojson }}, repositoryNamespace: {{ params.pvc | tojson }}}\n",
            ),
            "{pvc: team-beta, repository: r}",
            "spec.parameters.pvc: team-beta is outside the Operation's namespace team-alpha",
        ),
        (
            "RunCommand",
            "job",
            Some(
                "apiVersion: batch/v1\nkind: Job\nmetadata: {name: {{ childName }}}\nspec:\n  template:\n    spec:\n      containers: [{name: run, image: {{ params.image | tojson }}}]\n      volumes: [{name: d, ephemeral: {volumeClaimTemplate: {spec: {volumeName: {{ params.command[0] | tojson }}}}}}]\n",
            ),
            "{image: busybox, command: [pv-of-team-beta]}",
            "spec.parameters.command[0]: names a PersistentVolume, which no namespace owns",
        ),
        (
            "Migration",
            "helmHookJob",
            Some(
                "apiVersion: batch/v1\nkind: Job\nmetadata: {name: {{ childName }}}\nspec:\n  template:\n    metadata: {namespace: {{ params.hookName | tojson }}}\n    spec:\n      containers: [{name: run, image: {{ params.image | tojson }}}]\n",
            ),
            "{hookName: team-beta, image: busybox}",
            "spec.parameters.hookName: team-beta is outside the Operation's namespace team-alpha",
        ),
        (
            "Upgrade",
            "helm",
            Some(
                "{% for object in appObjects %}\n---\n{{ object | merge({\"spec\": {\"storageNamespace\": \"team-beta\"}}) | tojson }}\n{% endfor %}\n",
            ),
            "{targetVersion: 1.0.1}",
            "spec.engine: team-beta is outside the Operation's namespace team-alpha (rendered as HelmRelease team-alpha/app spec.storageNamespace)",
        ),
    ];
    for (type_, engine, template, params, expected) in cases {
        let mut templates = Templates::embedded();
        let key = format!("{}{}.{engine}", type_[..1].to_lowercase(), &type_[1..]);
        if let Some(source) = template {
            templates.insert(format!("operation/{key}.yaml.j2"), *source);
        }
        let renderer = Renderer::new(
            templates,
            RenderOptions {
                cluster_id: Some("eu-prod-1".into()),
                ..RenderOptions::default()
            },
        );
        let result = render_tree(
            &tenancy_docs(type_, engine, params),
            &renderer,
            Some("eu-prod-1"),
        );
        let problems: Vec<String> = result.problems.iter().map(ToString::to_string).collect();
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!("Operation/team-alpha/op-1: {expected}"))),
            "{key} {params}: expected {expected:?}, got {problems:#?}"
        );
        assert!(
            result
                .intents
                .iter()
                .all(|i| i.key.kind.as_str() != "Operation"),
            "{key} {params}: rendered anyway"
        );
    }
}

// ---- output hygiene: what a reviewer reads holds only the documents render produced ----

/// A file name that would end the `# Source:` comment and start a Secret of its own.
const FORGED: &str = "x\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: stolen, namespace: team-alpha}\n# \u{1b}[2K\u{202e}";

fn kinds_of_yaml(text: &str) -> Vec<String> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|d| d["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn hostile_names_cannot_add_documents_to_the_output_or_reach_the_terminal() {
    // Defence in depth: even a location and a key that were never refused stay in their comment.
    let mut result = render_tree(&examples(), &renderer(), Some("eu-prod-1"));
    let produced: Vec<String> = result
        .objects()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect();
    for intent in &mut result.intents {
        intent.location = format!("{FORGED}.yaml");
        intent.key.name = FORGED.into();
    }
    let yaml = vworkspace_operator::cli::render::to_yaml(&result).unwrap();
    assert_eq!(kinds_of_yaml(&yaml), produced, "{yaml}");

    // The CLI, on a git revision and on a directory with such file names: refused with the path escaped.
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    copy_dir(&root().join("examples/cluster-repo"), &repo);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "intent"]);
    let dir = repo.join("clusters/eu-prod-1/namespaces/team-alpha");
    let app = std::fs::read(dir.join("applicationinstance-nextcloud.yaml")).unwrap();
    for name in [
        format!("{FORGED}.yaml"),
        "app\u{202e}lmay.yaml".into(),
        "a\u{85}.yml".into(),
    ] {
        std::fs::write(dir.join(name), &app).unwrap();
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "hostile names"]);
    let clean = bin()
        .args(["render", "--repo"])
        .arg(&repo)
        .args(["--rev", "HEAD~1", "--cluster-id", "eu-prod-1"])
        .output()
        .unwrap();
    let runs = [
        vec!["--repo", "R", "--rev", "HEAD"],
        vec!["--repo", "R", "--diff", "HEAD~1..HEAD"],
        vec!["--dir", "R"],
    ];
    for args in runs {
        let out = bin()
            .arg("render")
            .args(args.iter().map(|a| {
                if *a == "R" {
                    repo.as_os_str()
                } else {
                    a.as_ref()
                }
            }))
            .args(["--cluster-id", "eu-prod-1"])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        for text in [&stdout, &stderr] {
            let bad = text
                .chars()
                .find(|&c| c != '\n' && vworkspace_operator::escape::is_hostile(c));
            assert_eq!(bad, None, "{args:?}: {text}");
        }
        assert_eq!(
            stderr
                .matches("refused: the path contains the control or bidirectional character")
                .count(),
            3,
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("team-alpha/x\\n---\\napiVersion: v1\\nkind: Secret"),
            "{stderr}"
        );
        if args.contains(&"--diff") {
            // Nothing the hostile commit carries changes the rendering.
            assert_eq!(stdout, "", "{stdout}");
        } else {
            assert_eq!(
                kinds_of_yaml(&stdout),
                kinds_of_yaml(&String::from_utf8_lossy(&clean.stdout))
            );
            assert_eq!(kinds_of_yaml(&stdout), produced);
        }
    }
}

/// `render --engine argocd` shows what Argo CD will get (Applications and their AppProjects), and names each
/// intent the engine cannot serve (values from a Secret or ConfigMap) with its field and reason.
#[test]
fn cli_renders_for_the_argocd_engine_and_names_what_it_cannot_serve() {
    let out = bin()
        .args([
            "render",
            "--engine",
            "argocd",
            "--argocd-namespace",
            "gitops",
            "--dir",
        ])
        .arg(root().join("examples/cluster-repo"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ApplicationInstance/team-beta/vaultwarden: spec.values.source: secretRef is not served by the argocd engine"),
        "{stderr}"
    );
    assert!(stdout.contains("kind: Application\n"), "{stdout}");
    assert!(stdout.contains("kind: AppProject\n"), "{stdout}");
    assert!(stdout.contains("namespace: gitops\n"), "{stdout}");
    assert!(!stdout.contains("kind: HelmRelease"), "{stdout}");
    let out = bin()
        .args(["render", "--engine", "argo", "--dir"])
        .arg(root().join("examples/cluster-repo"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
