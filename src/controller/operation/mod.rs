//! The Operation reconciler, a pipeline: trust (the intent source proves the live spec: [`super::trust`], shared
//! with the ApplicationInstance reconciler) → [`admit`] (the target exists; validation, capability, allowed
//! types) → [`wait`] (conflicting Operations, approval) → [`start`] (render the engine's objects, check the engine
//! is installed, create the child once) → [`follow`] (the engine state of the child) → fold
//! ([`Ending::conditions`]: the phase and conditions of every way it can end, in one place); then [`report`]
//! (status, Events, control-plane events, git notes). Deleting a running Operation cancels it: its child is
//! deleted ([`cancel`]).

mod admit;
mod cancel;
mod follow;
mod report;
mod start;
mod wait;

use std::borrow::Cow;
use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{instrument, warn};

use super::application::Error;
use super::context::{Context, delays};
use super::engine_state::EngineState;
use super::trust::{Untrusted, trust};
use crate::api::conditions::{Cond, reasons, types};
use crate::api::{EngineRef, OPERATION_FINALIZER, Operation, OperationStatus, Phase};
use crate::intent::IntentKind;
use crate::source::Origin;

#[instrument(skip_all, fields(cluster = %ctx.settings.cluster_id, namespace = %op.namespace().unwrap_or_default(), object = %op.name_any(), reconcile_id = %fastrand::u64(..)))]
pub async fn reconcile(op: Arc<Operation>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let namespace = op.namespace().unwrap_or_default();
    let api: Api<Operation> = Api::namespaced(ctx.client.clone(), &namespace);
    if !ctx.should_act(op.as_ref(), OPERATION_FINALIZER).await? {
        return Ok(Action::await_change());
    }
    let result = if op.meta().deletion_timestamp.is_some() {
        cancel::cancel(&op, &api, &ctx).await
    } else {
        apply(&op, &api, &ctx).await
    };
    ctx.metrics
        .reconciled("operation", result.is_ok(), started.elapsed());
    result
}

pub fn error_policy(_op: Arc<Operation>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(%error, "reconcile failed; retrying");
    Action::requeue(delays::ERROR)
}

fn phase(op: &Operation) -> Phase {
    op.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

/// A verified, admitted Operation: what its `Verified` and `Accepted` conditions say.
struct Admitted {
    origin: Origin,
    /// The template it runs (`backup.velero`, …).
    template: String,
}

impl Admitted {
    /// `Verified=True` (from the origin) and `Accepted=True`.
    fn conditions(&self) -> [Cond; 2] {
        [
            self.origin.verified_condition(),
            Cond::new(
                types::ACCEPTED,
                "True",
                reasons::ADMISSION_PASSED,
                format!("template {}", self.template),
            ),
        ]
    }
}

/// Why an admitted Operation has not started yet (Blocked=True), looked at again later.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hold {
    /// Operations created earlier on the same target that this one must wait for (the conflict matrix).
    Conflict(Vec<String>),
    /// Its approval does not hold, and why.
    Approval(String),
    /// The kinds its engine writes that are not served (`Kind.group`).
    EngineMissing(Vec<String>),
}

impl Hold {
    /// The Blocked reason and message, and the Running=False note.
    fn says(&self) -> (&'static str, String, &'static str) {
        match self {
            Hold::Conflict(blocking) => (
                reasons::CONFLICTING_OPERATION,
                format!("waiting for {}", blocking.join(", ")),
                "blocked",
            ),
            Hold::Approval(why) => (reasons::AWAITING_APPROVAL, why.clone(), "awaiting approval"),
            Hold::EngineMissing(kinds) => (
                reasons::ENGINE_NOT_INSTALLED,
                format!("not installed: {}", kinds.join(", ")),
                "engine missing",
            ),
        }
    }
}

/// Where a reconcile of a live (not deleted) Operation ended. [`pipeline`] stops at the first step that cannot go
/// on; [`Ending::phase`] and [`Ending::conditions`] compute its status in one place ([`Ending::fill`] the other
/// status fields), and [`Ending::next`] says when to look again.
enum Ending {
    /// Finished before this look (Succeeded, Failed, Cancelled): nothing written, its outcome offered again.
    Finished,
    /// The intent source does not prove this spec: Blocked with its reason; the phase stays.
    Untrusted {
        phase: Phase,
        reason: &'static str,
        message: String,
    },
    /// The intent source cannot tell yet (Flux has likely not applied the newest revision): nothing written,
    /// asked again soon.
    Pending,
    /// Verified, but its target ApplicationInstance does not exist: held Pending.
    NoTarget { origin: Origin, message: String },
    /// Verified, but refused by the API server's rules or the webhook's: not admitted, held Pending.
    Invalid { origin: Origin, message: String },
    /// Admitted, but its template cannot be read (validation refuses that first): nothing written.
    NoTemplate,
    /// Admitted, and held Pending before it starts.
    Held { admitted: Admitted, hold: Hold },
    /// Its objects cannot be rendered: Blocked; the phase stays.
    RenderFailed {
        admitted: Admitted,
        phase: Phase,
        message: String,
    },
    /// The namespace lost its gate label before the child was created: nothing written, nothing said.
    Ungated,
    /// Its children were created (the helm engine has none: `app_generation` is the target's generation the
    /// upgrade starts at): Running.
    Started {
        admitted: Admitted,
        engine_ref: EngineRef,
        app_generation: Option<String>,
    },
    /// Running on the helm engine, and the target's HelmRelease not seen yet: nothing written, looked at again
    /// soon.
    Unseen,
    /// Its child is gone, or is another Operation's: Failed, finished now.
    Lost {
        admitted: Admitted,
        message: String,
        running: &'static str,
    },
    /// Running: the engine state of its child folded in.
    Followed {
        admitted: Admitted,
        state: EngineState,
    },
}

impl Ending {
    /// The origin the intent source proved, once it did.
    fn origin(&self) -> Option<&Origin> {
        match self {
            Ending::NoTarget { origin, .. } | Ending::Invalid { origin, .. } => Some(origin),
            Ending::Held { admitted, .. }
            | Ending::RenderFailed { admitted, .. }
            | Ending::Started { admitted, .. }
            | Ending::Lost { admitted, .. }
            | Ending::Followed { admitted, .. } => Some(&admitted.origin),
            Ending::Finished
            | Ending::Untrusted { .. }
            | Ending::Pending
            | Ending::NoTemplate
            | Ending::Ungated
            | Ending::Unseen => None,
        }
    }

    /// The phase this ending writes; `None`: no status is written.
    fn phase(&self) -> Option<Phase> {
        match self {
            Ending::Finished
            | Ending::Pending
            | Ending::NoTemplate
            | Ending::Ungated
            | Ending::Unseen => None,
            Ending::Untrusted { phase, .. } | Ending::RenderFailed { phase, .. } => Some(*phase),
            Ending::NoTarget { .. } | Ending::Invalid { .. } | Ending::Held { .. } => {
                Some(Phase::Pending)
            }
            Ending::Started { .. } => Some(Phase::Running),
            Ending::Lost { .. } => Some(Phase::Failed),
            Ending::Followed { state, .. } => Some(state.phase),
        }
    }

    /// The conditions of this ending (the one place they are computed).
    fn conditions(&self) -> Vec<Cond> {
        let not_started =
            |note: &str| Cond::new(types::RUNNING, "False", reasons::ENGINE_NOT_STARTED, note);
        let unblocked = || Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, "");
        let verified = || self.origin().map(Origin::verified_condition);
        match self {
            Ending::Finished
            | Ending::Pending
            | Ending::NoTemplate
            | Ending::Ungated
            | Ending::Unseen => Vec::new(),
            Ending::Untrusted {
                reason, message, ..
            } => vec![
                Cond::new(types::VERIFIED, "False", *reason, message.clone()),
                Cond::new(types::BLOCKED, "True", *reason, message.clone()),
                not_started("not verified"),
            ],
            Ending::NoTarget { message, .. } => verified()
                .into_iter()
                .chain([
                    Cond::new(
                        types::BLOCKED,
                        "True",
                        reasons::DEPENDENCY_MISSING,
                        message.clone(),
                    ),
                    not_started("waiting for the target"),
                ])
                .collect(),
            Ending::Invalid { message, .. } => verified()
                .into_iter()
                .chain([
                    Cond::new(
                        types::ACCEPTED,
                        "False",
                        reasons::VALIDATION_FAILED,
                        message.clone(),
                    ),
                    not_started("not admitted"),
                ])
                .collect(),
            Ending::Held { admitted, hold } => {
                let (reason, message, note) = hold.says();
                let mut conds = admitted.conditions().to_vec();
                conds.push(Cond::new(types::BLOCKED, "True", reason, message));
                conds.push(not_started(note));
                conds
            }
            Ending::RenderFailed {
                admitted, message, ..
            } => {
                let mut conds = admitted.conditions().to_vec();
                conds.push(Cond::new(
                    types::BLOCKED,
                    "True",
                    reasons::RENDER_FAILED,
                    message.clone(),
                ));
                conds.push(not_started("render failed"));
                conds
            }
            Ending::Started {
                admitted,
                engine_ref,
                ..
            } => {
                let mut conds = admitted.conditions().to_vec();
                conds.push(unblocked());
                conds.push(Cond::new(
                    types::RUNNING,
                    "True",
                    reasons::ENGINE_STARTED,
                    format!("{} {}", engine_ref.kind, engine_ref.name),
                ));
                conds
            }
            Ending::Lost {
                admitted,
                message,
                running,
            } => {
                let mut conds = admitted.conditions().to_vec();
                conds.push(Cond::new(
                    types::FAILED,
                    "True",
                    reasons::ENGINE_FAILED,
                    message.clone(),
                ));
                conds.push(Cond::new(
                    types::RUNNING,
                    "False",
                    reasons::ENGINE_FAILED,
                    *running,
                ));
                conds
            }
            Ending::Followed { admitted, state } => {
                let mut conds = admitted.conditions().to_vec();
                conds.extend(follow::conditions(state));
                conds
            }
        }
    }

    /// The status fields besides phase and conditions; `now` is the time of the write (RFC 3339).
    fn fill(&self, s: &mut OperationStatus, now: &str) {
        let intent_commit = || {
            self.origin()
                .and_then(Origin::intent_commit)
                .map(str::to_string)
        };
        match self {
            // Where the intent came from is recorded once it is verified; a refusal keeps the last record.
            Ending::NoTarget { .. }
            | Ending::Invalid { .. }
            | Ending::Held { .. }
            | Ending::RenderFailed { .. } => s.intent_commit = intent_commit(),
            Ending::Started {
                engine_ref,
                app_generation,
                ..
            } => {
                s.engine_ref = Some(engine_ref.clone());
                s.started_at.get_or_insert_with(|| now.to_string());
                if let Some(generation) = app_generation {
                    s.outputs.insert("appGeneration".into(), generation.clone());
                }
                s.intent_commit = intent_commit();
            }
            Ending::Lost { .. } => s.finished_at = Some(now.to_string()),
            Ending::Followed { state, .. } => {
                for (k, v) in &state.outputs {
                    s.outputs.insert(k.clone(), v.clone());
                }
                if s.started_at.is_none() {
                    s.started_at = state.started_at.clone();
                }
                if state.phase.is_terminal() {
                    s.finished_at = state.finished_at.clone().or_else(|| Some(now.to_string()));
                }
            }
            Ending::Finished
            | Ending::Untrusted { .. }
            | Ending::Pending
            | Ending::NoTemplate
            | Ending::Ungated
            | Ending::Unseen => {}
        }
    }

    /// When to look again.
    fn next(&self) -> Action {
        match self {
            Ending::Finished
            | Ending::Invalid { .. }
            | Ending::NoTemplate
            | Ending::RenderFailed { .. }
            | Ending::Ungated
            | Ending::Lost { .. } => Action::await_change(),
            Ending::Untrusted { .. } | Ending::NoTarget { .. } | Ending::Held { .. } => {
                Action::requeue(delays::WAITING)
            }
            Ending::Pending | Ending::Started { .. } | Ending::Unseen => {
                Action::requeue(delays::PROGRESS)
            }
            Ending::Followed { state, .. } if state.phase.is_terminal() => Action::await_change(),
            Ending::Followed { .. } => Action::requeue(delays::PROGRESS),
        }
    }
}

/// A live Operation: the pipeline, then its status, then its outcome.
async fn apply(op: &Operation, api: &Api<Operation>, ctx: &Context) -> Result<Action, Error> {
    // The finalizer may be added on the way (once it is verified): the Operation as the API server last answered.
    let mut current = Cow::Borrowed(op);
    let ending = pipeline(&mut current, api, ctx).await?;
    let op = current.as_ref();
    if let Ending::Finished = ending {
        // Its outcome was recorded when it finished; offered again (the sink drops repeats).
        report::record_outcome(op, ctx);
    }
    if let Ending::Followed { state, .. } = &ending
        && let Some(warning) = &state.warning
    {
        report::warn_partially_failed(op, ctx, warning).await;
    }
    if let Some(phase) = ending.phase() {
        let now = jiff::Timestamp::now().to_string();
        let conds = ending.conditions();
        let finished =
            report::write_status(op, ctx, phase, &conds, |s| ending.fill(s, &now)).await?;
        if let Some(finished) = finished {
            report::record_outcome(&finished, ctx);
        }
    }
    Ok(ending.next())
}

/// trust → admit → wait → start → follow.
async fn pipeline(
    op: &mut Cow<'_, Operation>,
    api: &Api<Operation>,
    ctx: &Context,
) -> Result<Ending, Error> {
    let current = phase(op);
    if current.is_terminal() {
        return Ok(Ending::Finished);
    }
    let origin = match trust(ctx.source.as_ref(), IntentKind::Operation, op.as_ref()) {
        Ok(origin) => origin,
        Err(Untrusted::Blocked { reason, message }) => {
            return Ok(Ending::Untrusted {
                phase: current,
                reason,
                message,
            });
        }
        Err(Untrusted::Pending { .. }) => return Ok(Ending::Pending),
    };
    // From here on the Operation has an outcome to report, and may get a child to clean up: the finalizer
    // keeps it until its Cancelled outcome is recorded and its child is gone. The rest of the reconcile goes
    // on with the object as the API server answered.
    if !super::finalize::has(op.as_ref(), OPERATION_FINALIZER) {
        *op = Cow::Owned(super::finalize::add(api, op, OPERATION_FINALIZER).await?);
        ctx.metrics.write("finalizer");
    }
    let op = op.as_ref();
    let admission = match admit::admit(op, ctx, origin).await? {
        Ok(admission) => admission,
        Err(ending) => return Ok(ending),
    };
    // Started already? Then follow the child; waiting rules only gate the start.
    let started = current == Phase::Running;
    if !started && let Some(hold) = wait::wait(op, ctx, &admission.template).await? {
        return Ok(Ending::Held {
            admitted: admission.admitted,
            hold,
        });
    }
    let rendered = match start::render(op, ctx, &admission).await? {
        Ok(rendered) => rendered,
        Err(start::Unrendered::Failed(message)) => {
            return Ok(Ending::RenderFailed {
                admitted: admission.admitted,
                phase: current,
                message,
            });
        }
        Err(start::Unrendered::NotInstalled(kinds)) => {
            return Ok(Ending::Held {
                admitted: admission.admitted,
                hold: Hold::EngineMissing(kinds),
            });
        }
    };
    if started {
        follow::follow(op, ctx, admission, rendered).await
    } else {
        start::start(op, ctx, admission, rendered).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn origin() -> Origin {
        Origin::Commit {
            intent_commit: "c0ffee".into(),
            revision: "r1".into(),
        }
    }

    fn admitted() -> Admitted {
        Admitted {
            origin: origin(),
            template: "backup.velero".into(),
        }
    }

    fn verified() -> Cond {
        origin().verified_condition()
    }

    fn accepted() -> Cond {
        Cond::new(
            types::ACCEPTED,
            "True",
            reasons::ADMISSION_PASSED,
            "template backup.velero",
        )
    }

    fn not_started(note: &str) -> Cond {
        Cond::new(types::RUNNING, "False", reasons::ENGINE_NOT_STARTED, note)
    }

    fn engine_ref() -> EngineRef {
        EngineRef {
            kind: "Backup".into(),
            name: "team-a-backup-1".into(),
            namespace: "velero".into(),
        }
    }

    fn state(phase: Phase) -> EngineState {
        EngineState {
            phase,
            reason: reasons::ENGINE_COMPLETED,
            message: "Velero reports Completed".into(),
            blocked: None,
            outputs: BTreeMap::from([("backupName".into(), "team-a-backup-1".into())]),
            started_at: Some("2026-01-01T00:00:00Z".into()),
            finished_at: None,
            warning: None,
        }
    }

    /// The action that looks again after `delay`, or on the next change.
    fn after(delay: Option<Duration>) -> Action {
        delay.map_or_else(Action::await_change, Action::requeue)
    }

    #[test]
    fn endings_that_write_nothing_have_no_phase_and_no_conditions() {
        for (ending, next) in [
            (Ending::Finished, None),
            (Ending::Pending, Some(delays::PROGRESS)),
            (Ending::NoTemplate, None),
            (Ending::Ungated, None),
            (Ending::Unseen, Some(delays::PROGRESS)),
        ] {
            assert_eq!(ending.phase(), None);
            assert!(ending.conditions().is_empty());
            assert_eq!(ending.next(), after(next));
            let mut s = OperationStatus::default();
            ending.fill(&mut s, "now");
            assert_eq!(s, OperationStatus::default());
        }
    }

    #[test]
    fn an_untrusted_operation_is_blocked_in_its_phase_and_asked_again() {
        let ending = Ending::Untrusted {
            phase: Phase::Running,
            reason: reasons::SPEC_MISMATCH,
            message: "edited".into(),
        };
        assert_eq!(ending.phase(), Some(Phase::Running));
        assert_eq!(
            ending.conditions(),
            [
                Cond::new(types::VERIFIED, "False", reasons::SPEC_MISMATCH, "edited"),
                Cond::new(types::BLOCKED, "True", reasons::SPEC_MISMATCH, "edited"),
                not_started("not verified"),
            ]
        );
        assert_eq!(ending.next(), after(Some(delays::WAITING)));
        let mut s = OperationStatus {
            intent_commit: Some("old".into()),
            ..Default::default()
        };
        ending.fill(&mut s, "now");
        assert_eq!(s.intent_commit.as_deref(), Some("old"));
    }

    #[test]
    fn endings_before_the_start_hold_the_operation_pending() {
        let no_target = Ending::NoTarget {
            origin: origin(),
            message: "ApplicationInstance team-a/web not found".into(),
        };
        assert_eq!(no_target.phase(), Some(Phase::Pending));
        assert_eq!(
            no_target.conditions(),
            [
                verified(),
                Cond::new(
                    types::BLOCKED,
                    "True",
                    reasons::DEPENDENCY_MISSING,
                    "ApplicationInstance team-a/web not found"
                ),
                not_started("waiting for the target"),
            ]
        );
        assert_eq!(no_target.next(), after(Some(delays::WAITING)));

        let invalid = Ending::Invalid {
            origin: origin(),
            message: "spec.engine: no".into(),
        };
        assert_eq!(invalid.phase(), Some(Phase::Pending));
        assert_eq!(
            invalid.conditions(),
            [
                verified(),
                Cond::new(
                    types::ACCEPTED,
                    "False",
                    reasons::VALIDATION_FAILED,
                    "spec.engine: no"
                ),
                not_started("not admitted"),
            ]
        );
        assert_eq!(invalid.next(), after(None));

        for (hold, reason, message, note) in [
            (
                Hold::Conflict(vec!["Restore restore-1 (Running)".into()]),
                reasons::CONFLICTING_OPERATION,
                "waiting for Restore restore-1 (Running)",
                "blocked",
            ),
            (
                Hold::Approval("no claim".into()),
                reasons::AWAITING_APPROVAL,
                "no claim",
                "awaiting approval",
            ),
            (
                Hold::EngineMissing(vec!["Backup.velero.io".into(), "X.y".into()]),
                reasons::ENGINE_NOT_INSTALLED,
                "not installed: Backup.velero.io, X.y",
                "engine missing",
            ),
        ] {
            let held = Ending::Held {
                admitted: admitted(),
                hold,
            };
            assert_eq!(held.phase(), Some(Phase::Pending));
            assert_eq!(
                held.conditions(),
                [
                    verified(),
                    accepted(),
                    Cond::new(types::BLOCKED, "True", reason, message),
                    not_started(note),
                ]
            );
            assert_eq!(held.next(), after(Some(delays::WAITING)));
        }

        // Each records the intent commit it was verified at.
        for ending in [no_target, invalid] {
            let mut s = OperationStatus::default();
            ending.fill(&mut s, "now");
            assert_eq!(s.intent_commit.as_deref(), Some("c0ffee"));
        }
    }

    #[test]
    fn a_render_failure_is_blocked_in_its_phase() {
        let ending = Ending::RenderFailed {
            admitted: admitted(),
            phase: Phase::Running,
            message: "boom".into(),
        };
        assert_eq!(ending.phase(), Some(Phase::Running));
        assert_eq!(
            ending.conditions(),
            [
                verified(),
                accepted(),
                Cond::new(types::BLOCKED, "True", reasons::RENDER_FAILED, "boom"),
                not_started("render failed"),
            ]
        );
        assert_eq!(ending.next(), after(None));
    }

    #[test]
    fn a_started_operation_runs_and_names_its_child() {
        let ending = Ending::Started {
            admitted: admitted(),
            engine_ref: engine_ref(),
            app_generation: Some("3".into()),
        };
        assert_eq!(ending.phase(), Some(Phase::Running));
        assert_eq!(
            ending.conditions(),
            [
                verified(),
                accepted(),
                Cond::new(types::BLOCKED, "False", reasons::UNBLOCKED, ""),
                Cond::new(
                    types::RUNNING,
                    "True",
                    reasons::ENGINE_STARTED,
                    "Backup team-a-backup-1"
                ),
            ]
        );
        assert_eq!(ending.next(), after(Some(delays::PROGRESS)));
        let mut s = OperationStatus::default();
        ending.fill(&mut s, "now");
        assert_eq!(s.engine_ref, Some(engine_ref()));
        assert_eq!(s.started_at.as_deref(), Some("now"));
        assert_eq!(s.outputs["appGeneration"], "3");
        assert_eq!(s.intent_commit.as_deref(), Some("c0ffee"));
        // Started once: the first start time stays.
        let mut s = OperationStatus {
            started_at: Some("before".into()),
            ..Default::default()
        };
        ending.fill(&mut s, "now");
        assert_eq!(s.started_at.as_deref(), Some("before"));
    }

    #[test]
    fn a_lost_child_fails_the_operation_now() {
        let ending = Ending::Lost {
            admitted: admitted(),
            message: "Backup team-a-backup-1 disappeared".into(),
            running: "child deleted",
        };
        assert_eq!(ending.phase(), Some(Phase::Failed));
        assert_eq!(
            ending.conditions(),
            [
                verified(),
                accepted(),
                Cond::new(
                    types::FAILED,
                    "True",
                    reasons::ENGINE_FAILED,
                    "Backup team-a-backup-1 disappeared"
                ),
                Cond::new(
                    types::RUNNING,
                    "False",
                    reasons::ENGINE_FAILED,
                    "child deleted"
                ),
            ]
        );
        assert_eq!(ending.next(), after(None));
        let mut s = OperationStatus::default();
        ending.fill(&mut s, "now");
        assert_eq!(s.finished_at.as_deref(), Some("now"));
        assert_eq!(s.intent_commit, None);
    }

    #[test]
    fn a_followed_child_gives_its_phase_outputs_and_times() {
        let running = Ending::Followed {
            admitted: admitted(),
            state: state(Phase::Running),
        };
        assert_eq!(running.phase(), Some(Phase::Running));
        assert_eq!(&running.conditions()[..2], [verified(), accepted()]);
        assert_eq!(running.next(), after(Some(delays::PROGRESS)));
        let mut s = OperationStatus::default();
        running.fill(&mut s, "now");
        assert_eq!(s.outputs["backupName"], "team-a-backup-1");
        assert_eq!(s.started_at.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert_eq!(s.finished_at, None);

        let done = Ending::Followed {
            admitted: admitted(),
            state: state(Phase::Succeeded),
        };
        assert_eq!(done.phase(), Some(Phase::Succeeded));
        assert_eq!(done.next(), after(None));
        let mut s = OperationStatus {
            started_at: Some("before".into()),
            ..Default::default()
        };
        done.fill(&mut s, "now");
        // No completion time from the engine: finished now.
        assert_eq!(s.finished_at.as_deref(), Some("now"));
        assert_eq!(s.started_at.as_deref(), Some("before"));
        assert_eq!(s.intent_commit, None);
    }
}
