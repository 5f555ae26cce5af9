package pathguard

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadOnlyMount: a sticky directory writable by everyone passes on a
// mount that is read-only (a Kubernetes secret volume is a tmpfs of mode
// 1777 mounted so), since no one can add to it; a file writable by
// everyone does not, nor does a read-only bind of a directory without the
// sticky bit, whose files others can rename through its source. The test runs itself again in
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
		// A read-only bind of a directory writable by everyone, without
		// the sticky bit: others rename its files through the source.
		open := os.Getenv("PATHGUARD_RO_OPEN")
		if got := why(open, true); !strings.Contains(got, "is writable by every user") {
			t.Errorf("a read-only bind of a 0777 directory: %q, want it refused", got)
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
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "-rm", "sh", "-ec", `
		mount --bind "$PATHGUARD_RO_OPEN" "$PATHGUARD_RO_OPEN"
		mount -o remount,bind,ro "$PATHGUARD_RO_OPEN"
		mount -t tmpfs -o mode=1777 none "$PATHGUARD_RO_DIR"
		echo x >"$PATHGUARD_RO_DIR/good.pem"; chmod 644 "$PATHGUARD_RO_DIR/good.pem"
		echo x >"$PATHGUARD_RO_DIR/open.pem"; chmod 666 "$PATHGUARD_RO_DIR/open.pem"
		mount -o remount,bind,ro "$PATHGUARD_RO_DIR"
		exec "$0" -test.run='^TestReadOnlyMount$' -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), "PATHGUARD_RO_DIR="+dir, "PATHGUARD_RO_OPEN="+open)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("in a mount namespace with a read-only tmpfs: %v\n%s", err, out)
	}
}
