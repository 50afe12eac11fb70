//! The API server's RBAC authorizer as the tests ask it: clients acting as a ServiceAccount (impersonation) and
//! SubjectAccessReviews.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::testbed;

/// A client that acts as `user` (with the groups of a ServiceAccount), through impersonation.
pub async fn client_as(user: &str) -> Client {
    let path = &testbed::server().kubeconfig;
    let kubeconfig = Kubeconfig::read_from(path).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(user.to_string());
    config.auth_info.impersonate_groups = Some(sa_groups(user));
    Client::try_from(config).unwrap()
}

pub fn sa_groups(user: &str) -> Vec<String> {
    let ns = user.split(':').nth(2).unwrap();
    vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{ns}"),
        "system:authenticated".into(),
    ]
}

/// Whether the API server's authorizer lets `user` do `verb` on `group/resource[/sub]` in `ns`.
pub async fn can(
    client: &Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(sa_groups(user)),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: ns.map(Into::into),
                name: name.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let got = api.create(&PostParams::default(), &sar).await.unwrap();
    got.status.expect("SAR status").allowed
}
