//! The intent source of Pull mode: a live intent is trusted when its provenance stamp proves it is the payload
//! of the job the agent last applied for it ([`super::provenance`]). The reconcilers ask it exactly what they
//! ask the Git view in GitOps mode.

use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::watch;

use super::agent::{AgentStatus, CREDENTIALS_SECRET};
use super::provenance;
use crate::git::policy::TrustPolicy;
use crate::source::{
    IntentSource, LiveIntent, Origin, PolicyTarget, SourceReport, SourceStatus, Verdict,
};

pub struct PullSource {
    key: Arc<RwLock<Option<Vec<u8>>>>,
    keys: super::agent::SharedKeys,
    agent: watch::Receiver<AgentStatus>,
    namespace: String,
}

impl PullSource {
    /// `key`: the provenance key the agent loads from its credentials Secret (shared).
    pub fn new(
        key: Arc<RwLock<Option<Vec<u8>>>>,
        keys: super::agent::SharedKeys,
        agent: watch::Receiver<AgentStatus>,
        namespace: &str,
    ) -> Self {
        Self {
            key,
            keys,
            agent,
            namespace: namespace.to_string(),
        }
    }
}

/// Why nothing is trusted before the agent has read its credentials.
pub const REASON_CREDENTIAL_MISSING: &str = "CredentialMissing";

impl IntentSource for PullSource {
    fn check(&self, live: &LiveIntent<'_>) -> Verdict {
        let LiveIntent {
            kind,
            namespace,
            name,
            spec,
            labels,
            annotations,
            ..
        } = *live;
        let key = self
            .key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(key) = key else {
            return Verdict::Blocked {
                reason: REASON_CREDENTIAL_MISSING,
                message: format!(
                    "Pull mode: the operator has not read its credentials Secret {}/{CREDENTIALS_SECRET} yet, so no \
                     job's provenance can be checked",
                    self.namespace
                ),
            };
        };
        let digest = provenance::intent_digest(kind.as_str(), spec, labels, annotations);
        match provenance::check(
            &key,
            &provenance::identity(kind.as_str(), namespace, name),
            annotations.get(provenance::ANNOTATION).map(String::as_str),
            &digest,
        ) {
            Ok(stamp) => {
                // Under the policy in force: a job signed by a key since removed, or unsigned while keys are
                // now required, is no longer trusted (as GitOps re-judges commits when keys change).
                let keys = self
                    .keys
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let still = match &keys {
                    Err(why) => Err((
                        crate::api::conditions::reasons::TRUST_POLICY_INVALID,
                        format!("no usable trust policy: {why}"),
                    )),
                    Ok(keys) if keys.is_empty() => Ok(()),
                    Ok(keys) if keys.iter().any(|k| k.name == stamp.signer) => Ok(()),
                    Ok(_) if stamp.signer == "-" => Err((
                        crate::source::pull::signing::reasons::UNSIGNED,
                        format!(
                            "applied from unsigned job {}, and the trust policy now requires signed jobs",
                            stamp.job_id
                        ),
                    )),
                    Ok(_) => Err((
                        crate::source::pull::signing::reasons::SIGNATURE_INVALID,
                        format!(
                            "applied from job {} signed by control-plane key {}, which the trust policy no longer \
                             names",
                            stamp.job_id, stamp.signer
                        ),
                    )),
                };
                match still {
                    Ok(()) => Verdict::Verified {
                        origin: Origin::Job {
                            job_id: stamp.job_id,
                            signer: stamp.signer,
                        },
                    },
                    Err((reason, message)) => Verdict::Blocked { reason, message },
                }
            }
            Err(m) => Verdict::Blocked {
                reason: m.reason,
                message: m.message,
            },
        }
    }

    fn status(&self) -> SourceStatus {
        let s = self.agent.borrow();
        SourceStatus {
            reachable: s.connected.0,
            last_error: (!s.connected.0).then(|| s.connected.2.clone()),
            ..SourceStatus::default()
        }
    }

    fn report(&self) -> SourceReport {
        let s = self.agent.borrow().clone();
        let registered = s.registered_at.is_some() || s.observed_token.is_some();
        SourceReport {
            conditions: s.conditions(),
            connected: s.connected.0,
            phase: Some(s.phase),
            last_heartbeat: s.last_heartbeat.map(|t| t.to_string()),
            observed_token: s.observed_token.clone(),
            credential_status: registered.then(|| crate::api::CredentialStatus {
                secret_name: Some(CREDENTIALS_SECRET.into()),
                secret_namespace: Some(self.namespace.clone()),
                registered_at: s.registered_at.clone(),
                registration_token_consumed: Some(s.registration_token_consumed),
            }),
            credentials_secret_ref: registered.then(|| crate::api::SecretRef {
                name: CREDENTIALS_SECRET.into(),
                namespace: self.namespace.clone(),
            }),
        }
    }
}

impl PolicyTarget for super::agent::Agent {
    fn set_policy(&self, policy: Result<TrustPolicy, String>) {
        self.set_keys(policy.map(|p| p.control_plane_keys().to_vec()));
    }
}
