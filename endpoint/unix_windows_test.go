package endpoint

import (
	"path/filepath"
	"testing"
)

// sockPath returns a path for a UNIX socket in a fresh directory. The
// unix: tests themselves, in unix_test.go, check Unix semantics (modes,
// symbolic-link locks) and are built on Unix only; this is their helper
// for the other tests that use a unix: endpoint (service_test.go).
func sockPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "s.sock")
}
