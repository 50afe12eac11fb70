//! Which engine installs an ApplicationInstance's chart (`--engine`): Flux or Argo CD, and what follows from
//! the choice (the kinds rendered, where they live, the release's kind).

/// What installs an ApplicationInstance's chart. One per cluster (`--engine`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HelmEngine {
    /// Flux's helm-controller: a HelmRelease and an OCIRepository or HelmRepository.
    #[default]
    Flux,
    /// Argo CD: an Application (with Helm source) and its AppProject, which lives in `namespace`.
    ArgoCd { namespace: String },
}

/// Argo CD's namespace when none is configured.
pub const DEFAULT_ARGOCD_NAMESPACE: &str = "argocd";

/// The finalizer Argo CD reads as "delete what the Application installed before the Application".
pub const ARGOCD_RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

impl HelmEngine {
    /// `flux` or `argocd` (the `--engine` flag and chart value).
    pub fn parse(name: &str, argocd_namespace: &str) -> Result<Self, String> {
        match name {
            "flux" => Ok(Self::Flux),
            "argocd" => Ok(Self::ArgoCd {
                namespace: argocd_namespace.to_string(),
            }),
            other => Err(format!("unknown engine {other:?}: flux or argocd")),
        }
    }

    /// `flux` or `argocd`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Flux => "flux",
            Self::ArgoCd { .. } => "argocd",
        }
    }

    /// Argo CD's namespace (the default when the engine is Flux: Operation specs may name it).
    pub fn argocd_namespace(&self) -> &str {
        match self {
            Self::Flux => DEFAULT_ARGOCD_NAMESPACE,
            Self::ArgoCd { namespace } => namespace,
        }
    }

    /// The child whose status is the release's: `HelmRelease` or `Application`.
    pub fn release_kind(&self) -> &'static str {
        match self {
            Self::Flux => "HelmRelease",
            Self::ArgoCd { .. } => "Application",
        }
    }

    /// The kinds an ApplicationInstance renders with this engine: (apiVersion, kind, in the intent's
    /// namespace). The release's kind comes first.
    pub fn child_kinds(&self) -> &'static [(&'static str, &'static str, bool)] {
        match self {
            Self::Flux => &[
                ("helm.toolkit.fluxcd.io/v2", "HelmRelease", true),
                ("source.toolkit.fluxcd.io/v1", "OCIRepository", true),
                ("source.toolkit.fluxcd.io/v1", "HelmRepository", true),
            ],
            Self::ArgoCd { .. } => &[
                ("argoproj.io/v1alpha1", "Application", true),
                ("argoproj.io/v1alpha1", "AppProject", false),
            ],
        }
    }

    /// What to install when a kind is not served.
    pub fn install_hint(&self) -> &'static str {
        match self {
            Self::Flux => "install Flux",
            Self::ArgoCd { .. } => "install Argo CD",
        }
    }

    /// The AppProject of an instance (Argo CD): `<namespace>.<release>`. Unique in Argo CD's shared namespace
    /// by construction: a namespace name has no `.`, so no two (namespace, release) pairs give the same name
    /// (with `-`, namespace `a-b` release `c` and namespace `a` release `b-c` would meet, and one tenant would
    /// overwrite the other's project). At most 63 + 1 + 53 characters, a valid DNS subdomain.
    pub fn project_name(namespace: &str, release: &str) -> String {
        format!("{namespace}.{release}")
    }
}
