#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct ClaimError;
pub fn verify_claim(_c: Option<&str>, _k: &[u8], _o: &str, _n: i64) -> Result<(), ClaimError> {
    Err(ClaimError)
}
