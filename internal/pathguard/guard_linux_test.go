package pathguard

import (
	"os"
	"os/exec"
	"testing"
)

// TestReadOnlyMount: a directory writable by everyone passes on a file
// system mounted read-only (a Kubernetes secret volume is one, mode 1777),
// since no one can write there. The test runs itself again in a mount
// namespace of its own (unshare -rm) with such a mount at a directory that
// is refused before it.
func TestReadOnlyMount(t *testing.T) {
	if dir := os.Getenv("PATHGUARD_RO_DIR"); dir != "" {
		if got := OthersCanChange(dir, true); got != "" {
			t.Fatalf("OthersCanChange(%s) on a read-only tmpfs of mode 1777 = %q, want none", dir, got)
		}
		return
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if got := OthersCanChange(dir, true); got == "" {
		t.Fatalf("OthersCanChange(%s) of mode 1777 before the mount: none", dir)
	}
	cmd := exec.Command("unshare", "-rm", "sh", "-c",
		`mount -t tmpfs -o ro,mode=1777 none "$PATHGUARD_RO_DIR" && exec "$0" -test.run='^TestReadOnlyMount$' -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), "PATHGUARD_RO_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a mount namespace with a read-only tmpfs: %v\n%s", err, out)
	}
}
