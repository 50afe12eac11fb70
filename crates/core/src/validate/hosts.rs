//! Chart hosts source-controller must not be sent to: a chart URL is fetched from inside the cluster, so a
//! host on loopback, link-local or a cloud metadata address, or a cluster-internal name, makes it a
//! server-side request forgery. Refused unless listed in the allow-list (`--allow-chart-host`, carried by
//! [`RenderOptions::allowed_chart_hosts`](crate::render::RenderOptions)).
//!
//! Hosts are judged as a URL parser reads them (WHATWG, the `url` crate): `2130706433`, `0x7f.1`, `0177.1`
//! and `127.1` are all `127.0.0.1`; `[::ffff:127.0.0.1]` is judged as the IPv4 address it maps; names are
//! lower-cased and a trailing dot is dropped.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::Host;

/// The host of a chart URL as a URL parser reads it (`oci://` is read like `https://`, whose host grammar
/// it shares), or `None` when it has none.
pub fn normalized_host(url: &str) -> Option<Host<String>> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let parsed = url::Url::parse(&format!("https://{rest}")).ok()?;
    parsed.host().map(|h| h.to_owned())
}

/// An allow-list entry (a host name or an IP address, in any form a URL parser accepts) in the same form.
fn normalized_entry(entry: &str) -> Option<Host<String>> {
    let entry = entry.trim();
    if entry.is_empty() || entry.contains(['/', '@', '?', '#']) {
        return None;
    }
    normalized_host(&format!("https://{entry}/"))
}

fn ipv4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("the cloud metadata address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if a == 0 {
        Some("an unspecified (\"this network\") address")
    } else if a == 100 && b == 100 && ip.octets()[2] == 100 && ip.octets()[3] == 200 {
        Some("the cloud metadata address")
    } else {
        None
    }
}

fn ipv6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return ipv4_reason(v4);
    }
    let segments = ip.segments();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("the unspecified address")
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some("the cloud metadata address")
    } else if segments[..6] == [0; 6] {
        // IPv4-compatible (deprecated) forms such as ::127.0.0.1.
        ipv4_reason(Ipv4Addr::from(
            (u32::from(segments[6]) << 16) | u32::from(segments[7]),
        ))
    } else {
        None
    }
}

fn name_reason(name: &str) -> Option<&'static str> {
    let name = name.trim_end_matches('.');
    const METADATA: [&str; 3] = ["metadata.google.internal", "metadata", "instance-data"];
    if name == "localhost" || name.ends_with(".localhost") {
        Some("a loopback name")
    } else if METADATA.contains(&name) {
        Some("a cloud metadata name")
    } else if name == "kubernetes"
        || name.starts_with("kubernetes.default")
        || name.ends_with(".svc")
        || name.ends_with(".cluster.local")
        || name == "cluster.local"
    {
        Some("a cluster-internal name")
    } else if !name.contains('.') {
        Some("a single-label name (resolved by the cluster's DNS search path, e.g. to a Service)")
    } else {
        None
    }
}

/// Why source-controller must not fetch from `url`'s host, or `None` when it may (an ordinary public name
/// or address, or a host on `allowed`).
pub fn chart_host_refusal(url: &str, allowed: &[String]) -> Option<String> {
    let host = normalized_host(url)?;
    if allowed
        .iter()
        .filter_map(|e| normalized_entry(e))
        .any(|e| e == host)
    {
        return None;
    }
    let why = match &host {
        Host::Ipv4(ip) => ipv4_reason(*ip),
        Host::Ipv6(ip) => ipv6_reason(*ip),
        Host::Domain(name) => name_reason(name),
    }?;
    Some(format!(
        "ChartHostNotAllowed: host {host} is {why}; source-controller would fetch it from inside the cluster. \
         If it is your registry, allow it with --allow-chart-host {host}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_hosts_are_refused_in_every_spelling_and_the_allow_list_is_exact() {
        for bad in [
            "oci://127.0.0.1:5000/charts",
            "oci://2130706433/c",
            "oci://0x7f.1/c",
            "oci://0177.0.0.1/c",
            "https://127.1/c",
            "https://[::ffff:127.0.0.1]/c",
            "https://[::1]/c",
            "https://[::]/c",
            "https://[fe80::1]/c",
            "https://[fd00:ec2::254]/c",
            "https://169.254.169.254/latest",
            "https://169.254.1.2/c",
            "https://0.0.0.0/c",
            "https://localhost/c",
            "https://LOCALHOST./c",
            "https://a.localhost/c",
            "https://metadata.google.internal/c",
            "https://kubernetes/c",
            "https://kubernetes.default/c",
            "https://kubernetes.default.svc/c",
            "https://registry.flux-system.svc.cluster.local./c",
            "https://registry.ns.svc/c",
            "https://registry/c",
        ] {
            assert!(chart_host_refusal(bad, &[]).is_some(), "{bad}");
        }
        for ok in [
            "oci://ghcr.io/nextcloud/helm",
            "https://charts.example.com",
            "https://10.1.2.3/c",
            "oci://r.io:5000/c",
        ] {
            assert_eq!(chart_host_refusal(ok, &[]), None, "{ok}");
        }
        let allow = vec!["127.0.0.1".to_string()];
        assert_eq!(
            chart_host_refusal("oci://127.0.0.1:5000/charts", &allow),
            None
        );
        assert_eq!(chart_host_refusal("oci://2130706433/charts", &allow), None);
        assert!(chart_host_refusal("oci://127.0.0.2/charts", &allow).is_some());
        assert!(chart_host_refusal("https://localhost/c", &allow).is_some());
        assert!(
            chart_host_refusal("https://169.254.169.254/c", &[])
                .unwrap()
                .contains("host 169.254.169.254 is the cloud metadata address")
        );
    }
}
