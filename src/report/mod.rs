//! Outcome sinks: the HTTPS event post to the control plane ([`events`]).

pub mod events;

/// Install aws-lc-rs as the process-wide rustls crypto provider. Call once at start-up, before the first TLS
/// connection (kube and reqwest both use rustls; with more than one backend compiled in, rustls has no
/// default and the first handshake would fail). Safe to call more than once.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
