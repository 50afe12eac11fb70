//! The validating admission webhook: the rules a CRD's CEL and the admission policy cannot express, served
//! over HTTPS by every replica (not only the leader), with the same functions `render` and the reconcilers
//! call (`crate::validate`): one rule, one implementation, one message.
//!
//! - `POST /validate`: an `admission.k8s.io/v1` AdmissionReview for an ApplicationInstance or an Operation.
//! - Certificates: issued and rotated by the operator ([`certs`]), kept in a Secret shared by the replicas,
//!   with the CA bundle copied into the ValidatingWebhookConfiguration; or read from files another issuer
//!   (cert-manager) keeps current (`--webhook-cert-dir`).
//!
//! Dry runs: rules that depend on other objects (the Operation's target exists and allows it) only warn on a
//! dry run, because a dry run of a whole commit (what Flux does before applying it) sees the cluster before the
//! commit: an Operation and the ApplicationInstance it targets arrive together. The real request is judged in
//! full.

pub mod certs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, Operation as AdmissionOp,
};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::api::{ApplicationInstance, Operation, Phase};
use crate::intent::Problem;
use crate::k8s::watch::{IntentWatches, Shared};
use crate::render::Renderer;
use crate::validate;

/// The ValidatingWebhookConfiguration's name (and the default of `--webhook-configuration`).
pub const CONFIGURATION_NAME: &str = "vworkspace-operator";

/// The ValidatingWebhookConfiguration, as the chart ships it, reaching the webhook through
/// `client_config` (the Service in a cluster; a `url` in the tests). Its `caBundle` is the operator's to set.
///
/// - `failurePolicy: Fail` and a 5 s timeout: in gated namespaces, no intent is admitted while the webhook is
///   unreachable (fail closed); nothing else in the cluster depends on it.
/// - Scoped to gated namespaces (`namespaceSelector`) and to intents (`objectSelector`: managed-by
///   control-plane); the admission policy refuses intents outside that scope by itself.
/// - `matchConditions`: CREATE, or an UPDATE that changes spec or labels (the policy's condition), so the
///   operator's own finalizer updates never wait for it.
pub fn webhook_configuration(client_config: serde_json::Value) -> serde_json::Value {
    let rule = |group: &str, resource: &str| {
        serde_json::json!({"apiGroups": [group], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
                           "resources": [resource], "scope": "Namespaced"})
    };
    serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME, "labels": {"app.kubernetes.io/part-of": "vworkspace-operator"}},
        "webhooks": [{
            "name": "intents.vworkspace.io",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            "matchPolicy": "Equivalent",
            "namespaceSelector": {"matchLabels": {
                crate::api::labels::NAMESPACE_GATE_KEY: crate::api::labels::NAMESPACE_GATE_VALUE}},
            "objectSelector": {"matchLabels": {
                crate::api::labels::MANAGED_BY: crate::api::labels::MANAGED_BY_CONTROL_PLANE}},
            "matchConditions": [{"name": "spec-or-labels-changed", "expression": validate::policy::CHANGED}],
            "rules": [rule("apps.vworkspace.io", "applicationinstances"), rule("ops.vworkspace.io", "operations")],
            "clientConfig": client_config,
        }]
    })
}

/// Everything the chart's `templates/admission.yaml` holds: the admission policy, its binding, and the webhook configuration
/// reaching the operator's webhook Service.
pub fn admission_manifests() -> Vec<serde_json::Value> {
    vec![
        validate::policy::admission_policy(),
        validate::policy::admission_policy_binding(),
        webhook_configuration(serde_json::json!({"service": {
            "namespace": "vworkspace-system", "name": "vworkspace-operator-webhook", "path": "/validate", "port": 443}})),
    ]
}

/// On the certificates' Secret: the names the serving certificate was issued for.
const NAMES_ANNOTATION: &str = "vworkspace.io/webhook-names";

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// Issued by the operator: the Secret `namespace/name`, the ValidatingWebhookConfiguration whose
    /// `caBundle` it keeps current, and how long certificates live.
    Managed {
        secret_namespace: String,
        secret_name: String,
        configuration: String,
        settings: certs::CertSettings,
    },
    /// `tls.crt` and `tls.key` in a directory another issuer keeps current (re-read when they change).
    Files(PathBuf),
}

/// The webhook's settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub addr: SocketAddr,
    pub certs: CertSource,
    /// The approval key: with one, an approval claim is checked when it is set or changed.
    pub approval_key: Option<Vec<u8>>,
}

/// What the handler needs.
pub struct Webhook {
    client: Client,
    renderer: Arc<Renderer>,
    cluster_id: String,
    approval_key: Option<Vec<u8>>,
    metrics: Option<crate::metrics::Metrics>,
    /// This cluster's intents, watched (every replica keeps its own): an Operation's target and the
    /// Operations it may conflict with are read here, not from the API server on each request.
    apps: Shared<ApplicationInstance>,
    ops: Shared<Operation>,
}

/// The bound webhook server.
pub struct WebhookServer {
    listener: TcpListener,
    resolver: Arc<Resolver>,
    config: WebhookConfig,
    webhook: Arc<Webhook>,
    /// The intents' watches when the server has its own (standalone), polled while it runs.
    watches: Vec<futures::future::BoxFuture<'static, ()>>,
}

impl WebhookServer {
    /// Bind the address and get a first certificate (issued, or read from files), so that the server is ready
    /// to serve when this returns. The server watches this cluster's intents itself, while it serves.
    pub async fn bind(
        client: Client,
        renderer: Arc<Renderer>,
        cluster_id: String,
        config: WebhookConfig,
        metrics: Option<crate::metrics::Metrics>,
    ) -> anyhow::Result<Self> {
        let (intents, watches) = IntentWatches::new(&client, &cluster_id);
        let mut server =
            Self::bind_shared(client, renderer, cluster_id, config, metrics, intents).await?;
        server.watches = watches;
        Ok(server)
    }

    /// [`WebhookServer::bind`], reading the intents from watches the caller runs (the operator's own).
    pub async fn bind_shared(
        client: Client,
        renderer: Arc<Renderer>,
        cluster_id: String,
        config: WebhookConfig,
        metrics: Option<crate::metrics::Metrics>,
        intents: IntentWatches,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding the admission webhook on {}", config.addr))?;
        let resolver = Arc::new(Resolver(RwLock::default(), metrics.clone()));
        match &config.certs {
            CertSource::Managed { .. } => {
                let material = sync_certs(&client, &config.certs).await?;
                resolver.load(&material.tls_crt, &material.tls_key)?;
            }
            CertSource::Files(dir) => {
                let (crt, key) = read_files(dir)?;
                resolver.load(&crt, &key)?;
            }
        }
        let webhook = Arc::new(Webhook {
            client,
            renderer,
            cluster_id,
            approval_key: config.approval_key.clone(),
            metrics,
            apps: intents.apps,
            ops: intents.ops,
        });
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "admission webhook serving");
        }
        Ok(Self {
            listener,
            resolver,
            config,
            webhook,
            watches: Vec::new(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.addr)
    }

    /// Serve until `stop` turns true; certificates are checked and rotated meanwhile.
    pub async fn serve(self, mut stop: watch::Receiver<bool>) {
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(self.resolver.clone());
        let mut tls = tls;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let router = Router::new()
            .route("/validate", post(validate_handler))
            .with_state(self.webhook.clone());
        let watches: Vec<_> = self.watches.into_iter().map(tokio::spawn).collect();
        let rotation = tokio::spawn(keep_certs(
            self.webhook.client.clone(),
            self.config.certs.clone(),
            self.resolver.clone(),
            stop.clone(),
        ));
        // Connections are kept (the API server reuses them) until the server stops, then closed with it.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                a = self.listener.accept() => a,
                _ = stop.wait_for(|s| *s) => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let Ok((stream, _)) = accepted else { continue };
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            connections.spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
        rotation.abort();
        connections.abort_all();
        for w in watches {
            w.abort();
        }
    }
}

/// Serves whatever certificate was loaded last.
#[derive(Debug, Default)]
/// The certificate served, and the metrics its expiry goes to.
struct Resolver(
    RwLock<Option<Arc<CertifiedKey>>>,
    Option<crate::metrics::Metrics>,
);

impl Resolver {
    fn load(&self, crt: &str, key: &str) -> anyhow::Result<()> {
        let chain = CertificateDer::pem_slice_iter(crt.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("reading the webhook certificate")?;
        let key =
            PrivateKeyDer::from_pem_slice(key.as_bytes()).context("reading the webhook key")?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(key)
            .context("loading the webhook key")?;
        *self.0.write().unwrap_or_else(|e| e.into_inner()) =
            Some(Arc::new(CertifiedKey::new(chain, signing)));
        if let (Some(metrics), Some((_, not_after))) = (&self.1, certs::validity(crt)) {
            metrics.set_webhook_certificate_expiry(not_after.unix_timestamp());
        }
        Ok(())
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Largest certificate chain or key file read from `--webhook-cert-dir`, in bytes: a PEM chain is a few KiB.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// The certificate chain and key in `dir`: regular files of at most [`MAX_PEM_BYTES`] each (a bigger one is
/// refused, naming the file and the limit, without being read whole).
fn read_files(dir: &std::path::Path) -> anyhow::Result<(String, String)> {
    let read = |f: &str| {
        let path = dir.join(f);
        crate::git::bounded::read_to_string(&path, MAX_PEM_BYTES)
            .with_context(|| format!("reading {}", path.display()))
    };
    Ok((read(certs::TLS_CRT)?, read(certs::TLS_KEY)?))
}

/// Check the certificates now and then: rotate them in the Secret when due (any replica may; writes are
/// compare-and-swap on the Secret), keep the webhook configuration's caBundle equal to the Secret's bundle, and
/// serve the Secret's (or the files') current certificate.
async fn keep_certs(
    client: Client,
    source: CertSource,
    resolver: Arc<Resolver>,
    mut stop: watch::Receiver<bool>,
) {
    let interval = match &source {
        CertSource::Managed { settings, .. } => {
            (settings.cert_validity / 12).clamp(Duration::from_secs(1), Duration::from_secs(600))
        }
        CertSource::Files(_) => Duration::from_secs(10),
    };
    let mut served = String::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let current = match &source {
            CertSource::Managed { .. } => sync_certs(&client, &source)
                .await
                .map(|m| (m.tls_crt, m.tls_key)),
            CertSource::Files(dir) => read_files(dir),
        };
        match current {
            Ok((crt, key)) if crt != served => match resolver.load(&crt, &key) {
                Ok(()) => {
                    info!("admission webhook: serving a new certificate");
                    served = crt;
                }
                Err(e) => warn!(error = %e, "admission webhook: the new certificate is unusable"),
            },
            Ok(_) => {}
            Err(e) => warn!(error = %e, "admission webhook: checking the certificates failed"),
        }
    }
}

/// Read the Secret, rotate what is due (compare-and-swap), and publish the CA bundle; the material in force.
async fn sync_certs(client: &Client, source: &CertSource) -> anyhow::Result<certs::Material> {
    let CertSource::Managed {
        secret_namespace,
        secret_name,
        configuration,
        settings,
    } = source
    else {
        anyhow::bail!("not operator-managed certificates");
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), secret_namespace);
    let material = loop {
        let existing = secrets.get_opt(secret_name).await?;
        let current = existing.as_ref().and_then(material_of);
        let now = time::OffsetDateTime::now_utc();
        let Some(next) = certs::plan(current.as_ref(), now, settings)? else {
            break current.expect("plan() keeps only existing material");
        };
        let mut secret = existing.clone().unwrap_or_default();
        secret.metadata.name = Some(secret_name.clone());
        secret.metadata.namespace = Some(secret_namespace.clone());
        secret.metadata.labels.get_or_insert_default().insert(
            "app.kubernetes.io/part-of".into(),
            "vworkspace-operator".into(),
        );
        secret
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(NAMES_ANNOTATION.into(), next.names.clone());
        secret.type_ = Some("kubernetes.io/tls".into());
        secret.data = None;
        secret.string_data = Some(
            [
                (certs::CA_CRT, &next.ca_bundle),
                (certs::CA_KEY, &next.ca_key),
                (certs::TLS_CRT, &next.tls_crt),
                (certs::TLS_KEY, &next.tls_key),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        );
        let written = match existing {
            // resourceVersion is kept: a replica that lost the race gets 409 and reads again.
            Some(_) => {
                secrets
                    .replace(secret_name, &PostParams::default(), &secret)
                    .await
            }
            None => secrets.create(&PostParams::default(), &secret).await,
        };
        match written {
            Ok(_) => {
                info!(secret = %secret_name, "admission webhook: certificates issued or rotated");
                break next;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    };
    publish_ca_bundle(client, configuration, &material.ca_bundle).await?;
    Ok(material)
}

fn material_of(secret: &Secret) -> Option<certs::Material> {
    let data = secret.data.as_ref()?;
    let get = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    Some(certs::Material {
        ca_bundle: get(certs::CA_CRT)?,
        ca_key: get(certs::CA_KEY)?,
        tls_crt: get(certs::TLS_CRT)?,
        tls_key: get(certs::TLS_KEY)?,
        names: secret
            .annotations()
            .get(NAMES_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
    })
}

/// Set `caBundle` on every webhook of the configuration that differs (a JSON patch that tests each webhook's
/// name first, so a concurrent edit of the list makes it fail rather than patch the wrong entry).
async fn publish_ca_bundle(client: &Client, name: &str, bundle: &str) -> anyhow::Result<()> {
    use base64::Engine as _;
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let Some(config) = api.get_opt(name).await? else {
        warn!(configuration = %name, "admission webhook: the ValidatingWebhookConfiguration is not installed");
        return Ok(());
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle);
    let mut ops = Vec::new();
    for (i, hook) in config.webhooks.iter().flatten().enumerate() {
        let current = hook.client_config.ca_bundle.as_ref().map(|b| &b.0[..]);
        if current == Some(bundle.as_bytes()) {
            continue;
        }
        ops.push(serde_json::json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": hook.name}));
        ops.push(serde_json::json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": encoded}));
    }
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))?;
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .with_context(|| {
            format!("setting the caBundle of ValidatingWebhookConfiguration {name}")
        })?;
    info!(configuration = %name, "admission webhook: caBundle updated");
    Ok(())
}

async fn validate_handler(
    State(webhook): State<Arc<Webhook>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let review: Result<AdmissionReview<DynamicObject>, _> = serde_json::from_slice(&body);
    let started = std::time::Instant::now();
    let (kind, response) = match review.map_err(|e| e.to_string()).and_then(|r| {
        let request: Result<AdmissionRequest<DynamicObject>, _> = r.try_into();
        request.map_err(|e| e.to_string())
    }) {
        Ok(request) => (request.kind.kind.clone(), webhook.judge(&request).await),
        Err(e) => (
            String::new(),
            AdmissionResponse::invalid(format!("not an AdmissionReview: {e}")),
        ),
    };
    if let Some(metrics) = &webhook.metrics {
        use crate::metrics::AdmissionVerdict;
        let verdict = if !response.allowed {
            AdmissionVerdict::Denied
        } else if response.warnings.as_ref().is_some_and(|w| !w.is_empty()) {
            AdmissionVerdict::Warned
        } else {
            AdmissionVerdict::Allowed
        };
        metrics.admission_review(&kind, verdict, started.elapsed());
    }
    let body = serde_json::to_vec(&response.into_review()).unwrap_or_default();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

impl Webhook {
    /// The verdict on one request.
    pub async fn judge(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let response = AdmissionResponse::from(request);
        if !matches!(request.operation, AdmissionOp::Create | AdmissionOp::Update) {
            return response;
        }
        let Some(object) = &request.object else {
            return response;
        };
        let value = match serde_json::to_value(object) {
            Ok(v) => v,
            Err(e) => return response.deny(format!("unreadable object: {e}")),
        };
        let ctx = validate::Context {
            cluster_id: Some(&self.cluster_id),
            renderer: &self.renderer,
        };
        let location = format!(
            "{}/{}",
            request.namespace.as_deref().unwrap_or_default(),
            request.name
        );
        let mut warnings = Vec::new();
        let problems = match request.kind.kind.as_str() {
            "ApplicationInstance" => match serde_json::from_value::<ApplicationInstance>(value) {
                Ok(app) => validate::check_application(&location, &app, &ctx),
                Err(e) => return response.deny(format!("not an ApplicationInstance: {e}")),
            },
            "Operation" => match serde_json::from_value::<Operation>(value) {
                Ok(op) => {
                    let old = request
                        .old_object
                        .as_ref()
                        .and_then(|o| serde_json::to_value(o).ok())
                        .and_then(|o| serde_json::from_value::<Operation>(o).ok());
                    match self
                        .judge_operation(&location, &op, old.as_ref(), request.dry_run, &ctx)
                        .await
                    {
                        Ok((problems, w)) => {
                            warnings = w;
                            problems
                        }
                        // Fail closed: a rule that cannot be evaluated refuses.
                        Err(e) => {
                            return response.deny(format!("could not check the Operation: {e}"));
                        }
                    }
                }
                Err(e) => return response.deny(format!("not an Operation: {e}")),
            },
            other => return response.deny(format!("unexpected kind {other}")),
        };
        debug!(object = %location, problems = problems.len(), "admission review");
        let mut response = if problems.is_empty() {
            response
        } else {
            response.deny(
                problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        };
        if !warnings.is_empty() {
            response.warnings = Some(warnings);
        }
        response
    }

    /// The Operation's rules: its own, then its target's (warnings on a dry run), its approval claim (with the
    /// key, when set or changed), and the conflict matrix (a warning: the contract admits a conflict as
    /// Blocked/ConflictingOperation).
    async fn judge_operation(
        &self,
        location: &str,
        op: &Operation,
        old: Option<&Operation>,
        dry_run: bool,
        ctx: &validate::Context<'_>,
    ) -> Result<(Vec<Problem>, Vec<String>), kube::Error> {
        let namespace = op.namespace().unwrap_or_default();
        let mut problems = validate::check_operation(location, op, ctx);
        let mut warnings = Vec::new();
        // The target from the cache; a miss is read from the API server (it may have been created a moment
        // ago, as when Flux applies an ApplicationInstance and its Operation together).
        let cached = self.apps.synced().then(|| {
            self.apps
                .store()
                .get(&ObjectRef::new(&op.spec.target_ref.name).within(&namespace))
        });
        let target = match cached.flatten() {
            Some(app) => Some((*app).clone()),
            None => {
                Api::<ApplicationInstance>::namespaced(self.client.clone(), &namespace)
                    .get_opt(&op.spec.target_ref.name)
                    .await?
            }
        };
        let target_problems = validate::check_operation_target(location, op, target.as_ref());
        if dry_run {
            warnings.extend(target_problems.iter().map(|p| {
                format!(
                    "{}: {} (checked again when the request is not a dry run)",
                    p.field, p.reason
                )
            }));
        } else {
            problems.extend(target_problems);
        }
        let claim = op.spec.approvals.as_ref().and_then(|a| a.claim.as_deref());
        let old_claim = old
            .and_then(|o| o.spec.approvals.as_ref())
            .and_then(|a| a.claim.as_deref());
        // The claim binds the spec: judged again when the claim or what it approves changes.
        let digest = crate::validate::approval::spec_digest(&namespace, &op.spec);
        let old_digest = old.map(|o| crate::validate::approval::spec_digest(&namespace, &o.spec));
        if let (Some(key), Some(claim)) = (&self.approval_key, claim)
            && (old_claim != Some(claim) || old_digest.as_deref() != Some(digest.as_str()))
            && let Err(e) = crate::validate::approval::verify_claim(
                Some(claim),
                key,
                &op.name_any(),
                &digest,
                jiff::Timestamp::now().as_second(),
            )
        {
            problems.push(Problem::new(
                location,
                format!("Operation/{namespace}/{}", op.name_any()),
                "spec.approvals.claim",
                e.to_string(),
            ));
        }
        if old.is_none() {
            // Warnings only: the cache is good enough (a live list while it fills).
            let others: Vec<Operation> = if self.ops.synced() {
                self.ops
                    .store()
                    .state()
                    .iter()
                    .filter(|o| o.metadata.namespace.as_deref() == Some(namespace.as_str()))
                    .map(|o| (**o).clone())
                    .collect()
            } else {
                Api::<Operation>::namespaced(self.client.clone(), &namespace)
                    .list(&ListParams::default())
                    .await?
                    .items
            };
            for other in others {
                let phase = other
                    .status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .unwrap_or_default();
                if other.name_any() != op.name_any()
                    && other.spec.target_ref.name == op.spec.target_ref.name
                    && matches!(phase, Phase::Pending | Phase::Running)
                    && op.spec.type_.blocked_by(other.spec.type_)
                {
                    warnings.push(format!(
                        "spec.type: {} waits while {} Operation {} is {} on the same target (Blocked/ConflictingOperation)",
                        op.spec.type_.as_str(),
                        other.spec.type_.as_str(),
                        other.name_any(),
                        phase.as_str()
                    ));
                }
            }
        }
        Ok((problems, warnings))
    }
}

#[cfg(test)]
mod read_files_tests {
    use super::*;

    #[test]
    fn certificate_files_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let pem = |len: usize| "A".repeat(len);
        std::fs::write(dir.path().join(certs::TLS_CRT), pem(MAX_PEM_BYTES as usize)).unwrap();
        std::fs::write(dir.path().join(certs::TLS_KEY), pem(10)).unwrap();
        assert!(read_files(dir.path()).is_ok());
        let crt = dir.path().join(certs::TLS_CRT);
        std::fs::write(&crt, pem(MAX_PEM_BYTES as usize + 1)).unwrap();
        let e = format!("{:#}", read_files(dir.path()).unwrap_err());
        assert!(
            e.contains(&crt.display().to_string()) && e.contains("1048576-byte limit"),
            "{e}"
        );
    }
}
