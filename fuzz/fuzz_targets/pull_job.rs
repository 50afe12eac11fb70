//! The control plane's answer to `GET /api/agent/jobs` as Pull mode reads it: the job list (read as I-JSON), each
//! job's action, its canonical signed bytes (RFC 8785) and the signature check against a fixed control-plane key.
//! Input: the response body (also read as one document, as `sign-job` reads it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vworkspace_operator::source::pull::{ijson, jcs, job, signing};

fuzz_target!(|data: &[u8]| {
    let _ = ijson::document(data);
    let Ok(jobs) = job::parse_jobs(data) else {
        return;
    };
    let now = jiff::Timestamp::from_second(vwo_fuzz::NOW).unwrap();
    let keys = [signing::ControlPlaneKey {
        name: "cp".into(),
        key: vwo_fuzz::control_plane_key().verifying_key(),
    }];
    for parsed in jobs {
        let Ok(j) = parsed else { continue };
        let _ = job::action(&j);
        // One reading: the payload applied is its canonical form read back (what a signature covers).
        let text = jcs::canonicalize(&j.payload).expect("an accepted payload has a canonical form");
        let back: serde_json::Value = serde_json::from_str(&text).expect("canonical JSON parses");
        assert_eq!(back, j.payload);
        // What sign-job prints reads back as the same job.
        let again = job::parse_job(j.to_json()).expect("a printed job parses");
        assert_eq!(again, j);
        if let Ok(bytes) = signing::signed_bytes("fuzz-cluster", &j) {
            // Canonical JSON is a fixed point.
            let v: serde_json::Value = serde_json::from_slice(&bytes).expect("canonical JSON parses");
            assert_eq!(jcs::canonicalize(&v).unwrap().as_bytes(), &bytes[..]);
        }
        let verdict = signing::check(&keys, "fuzz-cluster", &j, now);
        if vwo_fuzz::verbose() {
            eprintln!("{}: {verdict:?}", j.id);
        }
    }
});
