package pathguard

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadOnlyMount: a directory writable by everyone passes on a mount
// that is read-only (a Kubernetes secret volume is a tmpfs of mode 1777
// mounted so), since no one can add to it; a file writable by everyone
// does not, nor does one of another owner. The test runs itself again in
// a user and mount namespace of its own (unshare -rm), where it mounts
// such a tmpfs over a directory refused before.
func TestReadOnlyMount(t *testing.T) {
	if dir := os.Getenv("PATHGUARD_RO_DIR"); dir != "" {
		if got := why(dir, true); got != "" {
			t.Errorf("Check(%s) on a read-only tmpfs of mode 1777 = %q, want none", dir, got)
		}
		if got := why(filepath.Join(dir, "good.pem"), false); got != "" {
			t.Errorf("a 0644 file there: %q, want none", got)
		}
		if got := why(filepath.Join(dir, "open.pem"), false); !strings.Contains(got, "is writable by every user") {
			t.Errorf("a 0666 file there: %q, want it refused", got)
		}
		return
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if got := why(dir, true); got == "" {
		t.Fatalf("Check(%s) of mode 1777 before the mount: none", dir)
	}
	cmd := exec.Command("unshare", "-rm", "sh", "-ec", `
		mount -t tmpfs -o mode=1777 none "$PATHGUARD_RO_DIR"
		echo x >"$PATHGUARD_RO_DIR/good.pem"; chmod 644 "$PATHGUARD_RO_DIR/good.pem"
		echo x >"$PATHGUARD_RO_DIR/open.pem"; chmod 666 "$PATHGUARD_RO_DIR/open.pem"
		mount -o remount,bind,ro "$PATHGUARD_RO_DIR"
		exec "$0" -test.run='^TestReadOnlyMount$' -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), "PATHGUARD_RO_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("in a mount namespace with a read-only tmpfs: %v\n%s", err, out)
	}
}
