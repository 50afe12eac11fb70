//! The webhook's certificates, issued and rotated by the operator itself (no cert-manager needed).
//!
//! A self-signed CA issues the serving certificate; both live in one Secret (`ca.crt` is the bundle the API
//! server trusts, `ca.key`, `tls.crt`, `tls.key`), shared by every replica, and the CA bundle is copied into
//! the ValidatingWebhookConfiguration's `caBundle`. [`plan`] is the pure rule; `super::run_certs` does the I/O.
//!
//! Rotation, so that requests keep being admitted throughout:
//! - The serving certificate is renewed after two thirds of its life (or when its names change), never
//!   outliving its CA.
//! - The CA is renewed after two thirds of its life. The new CA is added to the bundle in front of the old
//!   ones, which stay until they expire; the serving certificate is re-issued by the new CA only at a later
//!   check, once the bundle carrying the new CA has been published.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

/// How long certificates live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSettings {
    /// The names the API server reaches the webhook by: `SERVICE.NAMESPACE.svc` (and an IP address for a
    /// `url` client config).
    pub names: Vec<String>,
    pub ca_validity: std::time::Duration,
    pub cert_validity: std::time::Duration,
}

/// The Secret's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// PEM: the current CA first, then older CAs that have not expired.
    pub ca_bundle: String,
    /// PEM: the current CA's key.
    pub ca_key: String,
    pub tls_crt: String,
    pub tls_key: String,
    /// The names `tls_crt` was issued for (comma-separated), as [`CertSettings::names`] gave them.
    pub names: String,
}

pub const CA_CRT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";

#[derive(Debug, thiserror::Error)]
#[error("issuing the webhook certificate: {0}")]
pub struct CertError(#[from] rcgen::Error);

fn pems(bundle: &str) -> Vec<String> {
    bundle
        .split_inclusive("-----END CERTIFICATE-----")
        .map(str::trim)
        .filter(|p| p.starts_with("-----BEGIN CERTIFICATE-----"))
        .map(|p| format!("{p}\n"))
        .collect()
}

/// (not before, not after) of a PEM certificate.
pub(super) fn validity(pem: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use x509_cert::der::Decode;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let cert = x509_cert::Certificate::from_der(&der).ok()?;
    let v = &cert.tbs_certificate.validity;
    let t = |t: &x509_cert::time::Time| {
        OffsetDateTime::from_unix_timestamp(i64::try_from(t.to_unix_duration().as_secs()).ok()?)
            .ok()
    };
    Some((t(&v.not_before)?, t(&v.not_after)?))
}

/// Certificates are valid from a minute before they are issued, for clocks slightly behind.
const SLACK: time::Duration = time::Duration::minutes(1);

/// When two thirds of the validity asked for (not counting the slack) have passed.
fn renew_at(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let issued = (not_before + SLACK).min(not_after);
    issued + (not_after - issued) * 2 / 3
}

/// What the Secret should hold at `now`: `None` when `current` is fine as it is.
pub fn plan(
    current: Option<&Material>,
    now: OffsetDateTime,
    settings: &CertSettings,
) -> Result<Option<Material>, CertError> {
    let Some(current) = current.filter(|m| usable(m, now)) else {
        let (ca_pem, ca_key) = new_ca(now, settings)?;
        let (tls_crt, tls_key) = new_serving(&ca_pem, &ca_key, now, settings)?;
        return Ok(Some(Material {
            ca_bundle: ca_pem,
            ca_key,
            tls_crt,
            tls_key,
            names: settings.names.join(","),
        }));
    };
    let bundle = pems(&current.ca_bundle);
    let (ca_nb, ca_na) = validity(&bundle[0]).expect("usable() parsed it");
    // Old CAs leave the bundle once they have expired.
    let unexpired: Vec<String> = bundle
        .iter()
        .filter(|p| validity(p).is_some_and(|(_, na)| na > now))
        .cloned()
        .collect();
    if now >= renew_at(ca_nb, ca_na) {
        let (ca_pem, ca_key) = new_ca(now, settings)?;
        return Ok(Some(Material {
            ca_bundle: std::iter::once(ca_pem).chain(unexpired).collect(),
            ca_key,
            tls_crt: current.tls_crt.clone(),
            tls_key: current.tls_key.clone(),
            names: current.names.clone(),
        }));
    }
    let (tls_nb, tls_na) = validity(&current.tls_crt).expect("usable() parsed it");
    let wanted = settings.names.join(",");
    let have = &current.names;
    if now >= renew_at(tls_nb, tls_na) || *have != wanted || unexpired.len() != bundle.len() {
        let (tls_crt, tls_key) = if now >= renew_at(tls_nb, tls_na) || *have != wanted {
            new_serving(&bundle[0], &current.ca_key, now, settings)?
        } else {
            (current.tls_crt.clone(), current.tls_key.clone())
        };
        return Ok(Some(Material {
            ca_bundle: unexpired.concat(),
            ca_key: current.ca_key.clone(),
            tls_crt,
            tls_key,
            names: wanted,
        }));
    }
    Ok(None)
}

/// Parseable, the CA and the serving certificate still valid, the CA key usable.
fn usable(m: &Material, now: OffsetDateTime) -> bool {
    let bundle = pems(&m.ca_bundle);
    let Some(ca) = bundle.first() else {
        return false;
    };
    let valid = |pem: &str| validity(pem).is_some_and(|(nb, na)| nb <= now && now < na);
    valid(ca)
        && valid(&m.tls_crt)
        && KeyPair::from_pem(&m.ca_key).is_ok()
        && KeyPair::from_pem(&m.tls_key).is_ok()
}

fn new_ca(now: OffsetDateTime, settings: &CertSettings) -> Result<(String, String), CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(
        DnType::CommonName,
        format!("vworkspace-operator webhook CA {}", now.unix_timestamp()),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - SLACK;
    params.not_after = now + settings.ca_validity;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn new_serving(
    ca_pem: &str,
    ca_key: &str,
    now: OffsetDateTime,
    settings: &CertSettings,
) -> Result<(String, String), CertError> {
    let ca_key = KeyPair::from_pem(ca_key)?;
    let ca_not_after = validity(ca_pem).map(|(_, na)| na);
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(settings.names.clone())?;
    params.distinguished_name.push(
        DnType::CommonName,
        settings.names.first().cloned().unwrap_or_default(),
    );
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - SLACK;
    let wanted = now + settings.cert_validity;
    params.not_after = ca_not_after.map_or(wanted, |ca| ca.min(wanted));
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> CertSettings {
        CertSettings {
            names: vec!["hook.ns.svc".into(), "127.0.0.1".into()],
            ca_validity: Duration::from_secs(3000),
            cert_validity: Duration::from_secs(300),
        }
    }

    #[test]
    fn issues_renews_and_rotates_the_ca_without_a_gap() {
        let s = settings();
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let m0 = plan(None, t0, &s).unwrap().expect("a first issue");
        assert_eq!(pems(&m0.ca_bundle).len(), 1);
        assert_eq!(plan(Some(&m0), t0, &s).unwrap(), None, "nothing to do yet");
        // After two thirds of the serving certificate's life: a new one from the same CA.
        let t1 = t0 + time::Duration::seconds(201);
        let m1 = plan(Some(&m0), t1, &s).unwrap().expect("a renewal");
        assert_eq!(m1.ca_bundle, m0.ca_bundle);
        assert_ne!(m1.tls_crt, m0.tls_crt);
        // New names: a new serving certificate at once.
        let mut s2 = s.clone();
        s2.names.push("other.ns.svc".into());
        assert_ne!(
            plan(Some(&m1), t1, &s2).unwrap().unwrap().tls_crt,
            m1.tls_crt
        );
        // Checked every 50 s (the operator checks at a twelfth of the serving certificate's life): the serving
        // certificate is always valid, the CA is never replaced outright (the chain of trust is unbroken), the
        // CA rotates after two thirds of its life with the old CA kept in the bundle and the serving
        // certificate not re-issued in the same check, and the old CA leaves the bundle once it has expired.
        let mut m = m1.clone();
        let mut t = t1;
        let mut rotated_at = None;
        while t < t0 + time::Duration::seconds(3400) {
            t += time::Duration::seconds(50);
            let Some(next) = plan(Some(&m), t, &s).unwrap() else {
                continue;
            };
            let (before, after) = (pems(&m.ca_bundle), pems(&next.ca_bundle));
            assert!(
                after.contains(&before[0]) || validity(&before[0]).unwrap().1 <= t,
                "{t}"
            );
            if after.len() > before.len() {
                assert!(
                    t >= t0 + time::Duration::seconds(2000),
                    "rotated early at {t}"
                );
                assert_eq!(next.tls_crt, m.tls_crt, "re-issued in the rotating check");
                rotated_at = Some(t);
            }
            assert!(usable(&next, t), "{t}");
            m = next;
        }
        assert!(rotated_at.is_some(), "the CA rotated");
        assert_eq!(pems(&m.ca_bundle).len(), 1, "the old CA left the bundle");
        assert_ne!(pems(&m.ca_bundle)[0], pems(&m0.ca_bundle)[0]);
        // Garbage is replaced by a fresh issue.
        let junk = Material {
            ca_bundle: "x".into(),
            ca_key: "y".into(),
            tls_crt: "z".into(),
            tls_key: "w".into(),
            names: String::new(),
        };
        assert!(plan(Some(&junk), t0, &s).unwrap().is_some());
    }
}
