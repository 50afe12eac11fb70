//! The control plane's answers to an event post as the poster reads them: the `Retry-After` header (delay
//! seconds or an HTTP date, clamped as the worker does) and the detail quoted from an error response body.
//! Input: the header value, a newline, then the body.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vworkspace_operator::report::events::{
    MAX_RETRY_AFTER, MIN_RETRY_INTERVAL, parse_retry_after, response_detail,
};

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    // reqwest's HeaderValue::to_str: visible ASCII and tabs only.
    if header.iter().all(|&b| (32..127).contains(&b) || b == b'\t')
        && let Ok(value) = std::str::from_utf8(header)
        && let Some(delay) =
            parse_retry_after(value, jiff::Timestamp::from_second(vwo_fuzz::NOW).unwrap())
    {
        let clamped: Duration = delay.clamp(MIN_RETRY_INTERVAL, MAX_RETRY_AFTER);
        assert!(clamped <= MAX_RETRY_AFTER);
    }
    let detail = response_detail(body);
    // Quoted detail is cut to 256 bytes plus the ellipsis and the ` (…)` around it.
    assert!(
        detail.len() <= 256 + "…".len() + 3,
        "detail of {} bytes",
        detail.len()
    );
});
