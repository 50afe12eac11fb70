//! Trust, the first step of both reconcilers' pipelines (the ApplicationInstance's and the Operation's): the
//! intent source proves the live spec ([`crate::source::IntentSource::check`]) and names its [`Origin`], or says
//! why not.

use kube::ResourceExt;
use kube::core::object::HasSpec;
use serde::Serialize;
use serde_json::Value;

use crate::intent::IntentKind;
use crate::source::{IntentSource, LiveIntent, Origin, Verdict};

/// Why an intent is not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untrusted {
    /// Not proven: Blocked with this reason and message.
    Blocked {
        reason: &'static str,
        message: String,
    },
    /// The source cannot tell yet ([`Verdict::Pending`]): nothing written, asked again soon.
    Pending { message: String },
}

/// Trust: the intent source judges `obj` as it is live (typed spec, labels, annotations, managed fields).
pub fn trust<K>(source: &dyn IntentSource, kind: IntentKind, obj: &K) -> Result<Origin, Untrusted>
where
    K: ResourceExt + HasSpec,
    K::Spec: Serialize,
{
    let spec = serde_json::to_value(obj.spec()).unwrap_or(Value::Null);
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let verdict = source.check(&LiveIntent {
        kind,
        namespace: &namespace,
        name: &name,
        spec: &spec,
        labels: obj.labels(),
        annotations: obj.annotations(),
        managed_fields: obj.managed_fields(),
    });
    match verdict {
        Verdict::Verified { origin } => Ok(origin),
        Verdict::Blocked { reason, message } => Err(Untrusted::Blocked { reason, message }),
        Verdict::Pending { message } => {
            tracing::debug!(kind = kind.as_str(), object = %name, %message, "not acted on yet");
            Err(Untrusted::Pending { message })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApplicationInstance, Operation};
    use crate::source::SourceStatus;
    use std::sync::Mutex;

    /// A source that answers one verdict and remembers what it was asked.
    struct Fixed {
        verdict: Verdict,
        asked: Mutex<Vec<Asked>>,
    }

    /// What the source was asked about: kind, namespace, name, spec, and how many labels and annotations.
    #[derive(Debug, Clone, PartialEq)]
    struct Asked(IntentKind, String, String, Value, usize);

    impl Fixed {
        fn new(verdict: Verdict) -> Self {
            Self {
                verdict,
                asked: Mutex::new(Vec::new()),
            }
        }
    }

    impl IntentSource for Fixed {
        fn check(&self, live: &LiveIntent<'_>) -> Verdict {
            self.asked.lock().unwrap().push(Asked(
                live.kind,
                live.namespace.to_string(),
                live.name.to_string(),
                live.spec.clone(),
                live.labels.len() + live.annotations.len(),
            ));
            self.verdict.clone()
        }
        fn status(&self) -> SourceStatus {
            SourceStatus::default()
        }
    }

    fn op() -> Operation {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ops.vworkspace.io/v1alpha1",
            "kind": "Operation",
            "metadata": {"name": "backup-1", "namespace": "team-a", "labels": {"a": "b"}},
            "spec": {
                "targetRef": {"apiVersion": "apps.vworkspace.io/v1alpha1", "kind": "ApplicationInstance", "name": "web"},
                "type": "Backup",
                "engine": "velero"
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_verified_intent_gives_its_origin_and_the_source_sees_the_live_object() {
        let origin = Origin::FieldManager {
            manager: "cp".into(),
            signer: None,
        };
        let source = Fixed::new(Verdict::Verified {
            origin: origin.clone(),
        });
        let op = op();
        assert_eq!(
            trust(&source, IntentKind::Operation, &op),
            Ok(origin.clone())
        );
        assert_eq!(
            source.asked.lock().unwrap().clone(),
            [Asked(
                IntentKind::Operation,
                "team-a".into(),
                "backup-1".into(),
                serde_json::to_value(&op.spec).unwrap(),
                1
            )]
        );

        let app: ApplicationInstance = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps.vworkspace.io/v1alpha1",
            "kind": "ApplicationInstance",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"appRef": {"catalogId": "bookstack"}, "mode": "placeholder"}
        }))
        .unwrap();
        assert_eq!(
            trust(&source, IntentKind::ApplicationInstance, &app),
            Ok(origin)
        );
    }

    #[test]
    fn blocked_and_pending_verdicts_are_untrusted() {
        let blocked = Fixed::new(Verdict::Blocked {
            reason: "SpecMismatch",
            message: "edited".into(),
        });
        assert_eq!(
            trust(&blocked, IntentKind::Operation, &op()),
            Err(Untrusted::Blocked {
                reason: "SpecMismatch",
                message: "edited".into()
            })
        );
        let pending = Fixed::new(Verdict::Pending {
            message: "waiting for Flux".into(),
        });
        assert_eq!(
            trust(&pending, IntentKind::Operation, &op()),
            Err(Untrusted::Pending {
                message: "waiting for Flux".into()
            })
        );
    }
}
