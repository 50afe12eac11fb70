//go:build tools

// The packages this module builds (testbed.sh), so that go.mod and go.sum pin them.
package tools

import _ "github.com/controlplaneio-fluxcd/flux-operator/cmd/operator"
