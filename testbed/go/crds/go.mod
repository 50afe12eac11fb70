// Not built: this module only pins the upstream projects whose CRDs the tests install (their files are read from
// the module cache by testbed.sh crds). Flux's CRDs come from the controllers' own modules beside this one.
module github.com/vworkspace/vworkspace-operator/testbed/crds

go 1.26.0

require (
	github.com/argoproj/argo-cd/v3 v3.3.9
	github.com/argoproj/argo-workflows/v3 v3.7.3
	github.com/backube/volsync v0.14.0
	github.com/kubernetes-csi/external-snapshotter/client/v8 v8.7.0
	github.com/vmware-tanzu/velero v1.18.3
)
