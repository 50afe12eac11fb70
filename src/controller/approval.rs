#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct ClaimError;
pub fn verify_claim(_c: &str, _k: &[u8], _o: &str, _n: jiff::Timestamp) -> Result<(), ClaimError> {
    Err(ClaimError)
}
