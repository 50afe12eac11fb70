//! The I-JSON reader's own cases; the malleability attacks and the bounds, read through the job parser, are
//! in `job/ijson_cases.rs`.

use super::*;

#[test]
fn decimals_compare_by_value() {
    assert_eq!(decimal("1.50"), decimal("1.5"));
    assert_eq!(decimal("0.0010e3"), decimal("1"));
    assert_eq!(decimal("1e+21"), decimal("1000000000000000000000"));
    assert_ne!(decimal("-1"), decimal("1"));
    assert_eq!(decimal("-0.0"), decimal("0"));
    assert_ne!(decimal("1.00000000000000001"), decimal("1"));
}

#[test]
fn documents_are_read_by_the_same_rules() {
    assert!(document(br#"{"jobs":[{"id":"j","payload":{"n":1.5}}]}"#).is_ok());
    let e = document(br#"{"id":"j","payload":{"n":9007199254740993}}"#).unwrap_err();
    assert!(e.starts_with("JobNotIJson: payload.n: "), "{e}");
    assert!(
        document(br#"{"a":1,"a":2}"#)
            .unwrap_err()
            .contains("more than once")
    );
}
