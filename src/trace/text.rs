//! The text form of a [`Trace`]: the chain top to bottom, one section per link. Every string that came from the
//! cluster or the repo is escaped ([`crate::escape::Esc`]): a message cannot move the cursor or forge a line.

use std::fmt::Write as _;

use super::{CondInfo, OriginInfo, Trace};
use crate::escape::Esc;

/// `3d4h`, `5m12s`, `40s`.
pub fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

fn condition_line(out: &mut String, c: &CondInfo) {
    let held = c
        .held_seconds
        .map(|s| format!("for {}", duration(s)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {:<12} {:<7} {:<28} {:<10} {}",
        Esc(&c.type_),
        Esc(&c.status),
        Esc(&c.reason),
        held,
        Esc(&c.message)
    );
}

fn origin(out: &mut String, o: &OriginInfo) {
    match o {
        OriginInfo::GitOps {
            commit,
            verdict,
            subject,
            author,
            signature,
            last_verified,
        } => {
            out.push_str("Where it came from (GitOps: a signed commit)\n");
            let _ = writeln!(
                out,
                "  commit      {}",
                Esc(commit.as_deref().unwrap_or("(none named)"))
            );
            if let Some(s) = subject {
                let _ = writeln!(out, "  subject     {}", Esc(s));
            }
            if let Some(a) = author {
                let _ = writeln!(out, "  author      {}", Esc(a));
            }
            let _ = writeln!(out, "  signature   {}", Esc(signature));
            let _ = writeln!(out, "  verdict     {}", Esc(verdict));
            if let Some(l) = last_verified {
                let _ = writeln!(out, "  view        {}", Esc(l));
            }
        }
        OriginInfo::Pull {
            job_id,
            signer,
            idempotency_key,
            received,
            verdict,
        } => {
            out.push_str("Where it came from (Pull: a job from the control plane)\n");
            if let (Some(k), Some(at)) = (idempotency_key, received) {
                let _ = writeln!(out, "  idempotency {} (received {})", Esc(k), Esc(at));
            }
            let _ = writeln!(
                out,
                "  job         {}",
                Esc(job_id.as_deref().unwrap_or("(no stamp)"))
            );
            let _ = writeln!(
                out,
                "  signer      {}",
                Esc(signer.as_deref().unwrap_or("(no stamp)"))
            );
            let _ = writeln!(out, "  verdict     {}", Esc(verdict));
        }
        OriginInfo::Push {
            field_manager,
            signature_annotation,
            verdict,
        } => {
            out.push_str("Where it came from (Push: applied by the control plane)\n");
            let _ = writeln!(
                out,
                "  manager     {}",
                Esc(field_manager.as_deref().unwrap_or("(none owns the spec)"))
            );
            let _ = writeln!(
                out,
                "  signature   {}",
                if *signature_annotation {
                    "annotation present"
                } else {
                    "no annotation"
                }
            );
            let _ = writeln!(out, "  verdict     {}", Esc(verdict));
        }
        OriginInfo::Unknown { verdict } => {
            out.push_str("Where it came from\n");
            let _ = writeln!(out, "  verdict     {}", Esc(verdict));
        }
    }
}

/// The whole trace as text.
pub fn text(t: &Trace) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}/{}  (generation {}, cluster {})\n",
        t.kind,
        Esc(&t.namespace),
        Esc(&t.name),
        t.generation,
        Esc(if t.cluster_id.is_empty() {
            "?"
        } else {
            &t.cluster_id
        })
    );
    origin(&mut out, &t.origin);
    for f in &t.flux {
        let _ = writeln!(
            out,
            "  flux        {} {}/{} at {} (Ready {})",
            f.kind,
            Esc(&f.namespace),
            Esc(&f.name),
            Esc(if f.revision.is_empty() {
                "-"
            } else {
                &f.revision
            }),
            Esc(&f.ready)
        );
    }
    out.push_str("\nConditions\n");
    if t.conditions.is_empty() {
        out.push_str("  (none yet: the operator has not reconciled it)\n");
    }
    for c in &t.conditions {
        condition_line(&mut out, c);
    }
    out.push_str("\nWhat was rendered, as it is live\n");
    if t.children.is_empty() {
        out.push_str("  (nothing rendered)\n");
    }
    for c in &t.children {
        let state = if c.found { "" } else { "  (not found)" };
        let _ = writeln!(
            out,
            "  {} {}/{}{state}",
            c.kind,
            Esc(&c.namespace),
            Esc(&c.name)
        );
        for cond in &c.conditions {
            out.push_str("  ");
            condition_line(&mut out, cond);
        }
        for (k, v) in &c.facts {
            let _ = writeln!(out, "      {k}: {}", Esc(v));
        }
    }
    out.push_str("\nOutcome records\n");
    if t.notes.is_empty() {
        out.push_str("  notes: none shown (GitOps only; give --repo)\n");
    }
    for n in &t.notes {
        let refs: Vec<String> = n
            .child_refs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            out,
            "  note on {}: gen {} {}/{} [{}] {} ({})",
            Esc(&n.commit[..n.commit.len().min(12)]),
            n.generation,
            Esc(&n.outcome),
            Esc(&n.reason),
            Esc(&n.authenticity),
            Esc(&n.message),
            Esc(&refs.join(", "))
        );
    }
    for e in &t.events {
        let _ = writeln!(
            out,
            "  event {} {} {} x{} {}",
            Esc(&e.last),
            Esc(&e.type_),
            Esc(&e.reason),
            e.count,
            Esc(&e.message)
        );
    }
    out.push_str("\nWhat to do next\n");
    if t.next.is_empty() {
        out.push_str("  nothing: it is Ready and nothing blocks it\n");
    }
    for n in &t.next {
        let _ = writeln!(
            out,
            "  {} {}: {}",
            Esc(&n.condition),
            Esc(&n.reason),
            Esc(&n.remedy)
        );
        let _ = writeln!(out, "    $ {}", Esc(&n.command));
    }
    not_shown(&mut out, &t.unreadable);
    out
}

/// The closing section of a view: what could not be read, and why.
pub(super) fn not_shown(out: &mut String, unreadable: &[String]) {
    if !unreadable.is_empty() {
        out.push_str("\nNot shown (no access, or not served)\n");
        for u in unreadable {
            let _ = writeln!(out, "  {}", Esc(u));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(40), "40s");
        assert_eq!(duration(312), "5m12s");
        assert_eq!(duration(3_720), "1h02m");
        assert_eq!(duration(2 * 86_400 + 3_600), "2d01h");
        assert_eq!(duration(-5), "0s");
    }
}
