//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeSnippet returns the shell lines of the README's port forwarder, the
// ```sh block after "tether's main job, a port forwarder".
func readmeSnippet(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	const intro = "tether's main job, a port forwarder"
	i := strings.Index(s, intro)
	if i < 0 {
		t.Fatalf("README.md no longer has %q", intro)
	}
	s = s[i:]
	j := strings.Index(s, "```sh\n")
	if j < 0 {
		t.Fatal("README.md: no ```sh block after the port forwarder's introduction")
	}
	s = s[j+len("```sh\n"):]
	k := strings.Index(s, "```")
	if k < 0 {
		t.Fatal("README.md: the port forwarder's ```sh block does not end")
	}
	return s[:k]
}

// The addresses the README's snippet uses, which the test uses as they are.
const (
	readmeSocket = "/tmp/echo.sock"
	readmePort   = "127.0.0.1:7777"
)

// goShim stands in for the go command in the snippet's first line: it
// copies the tether the tests built instead of building one in a clone.
const goShim = `#!/bin/sh
if [ "$*" != "build -o tether ./cmd/tether" ]; then
	echo "readme_test's go: the README's snippet now runs \"go $*\"; teach TestReadmeSnippet's go shim to do it" >&2
	exit 1
fi
exec cp "$TETHER_TEST_BIN" tether
`

// TestReadmeSnippet runs the README's port forwarder exactly as written,
// with its own /tmp/echo.sock and port 7777, 20 times with sh and 10 with
// bash, one run after another, and wants "hello" from every run. The runs
// of every test process on the machine take turns (a lock file), and each
// must leave no process behind: the snippet's own last line waits for
// them.
func TestReadmeSnippet(t *testing.T) {
	snippet := readmeSnippet(t)
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "tether-readme-snippet-test.lock"), os.O_CREATE|os.O_RDONLY, 0o644) // read-only: another user's lock file will do
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	// Another program there would answer for the snippet's servers.
	for _, a := range [][2]string{{"tcp", readmePort}, {"unix", readmeSocket}} {
		if c, err := net.DialTimeout(a[0], a[1], time.Second); err == nil {
			c.Close()
			t.Fatalf("something already listens on %s %s, which the README's snippet uses; stop it first", a[0], a[1])
		}
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(goShim), 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "snippet.sh")
	if err := os.WriteFile(script, []byte(snippet), 0o644); err != nil {
		t.Fatal(err)
	}
	shells := []string{}
	for range 20 {
		shells = append(shells, "sh")
	}
	if _, err := exec.LookPath("bash"); err == nil {
		for range 10 {
			shells = append(shells, "bash")
		}
	}
	start := time.Now()
	for i, shell := range shells {
		work := filepath.Join(dir, fmt.Sprintf("run%02d", i+1))
		if err := os.Mkdir(work, 0o755); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := runSnippet(t, shell, script, work, bin)
		if err != nil || out != "hello\n" {
			t.Fatalf("run %d of the README's snippet (%s): %v; stdout %q, want \"hello\\n\"; stderr:\n%s\nthe snippet:\n%s",
				i+1, shell, err, out, errOut, snippet)
		}
		if _, err := os.Lstat(readmeSocket); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("run %d of the README's snippet (%s) left %s behind (%v)", i+1, shell, readmeSocket, err)
		}
	}
	t.Logf("%d runs in %v", len(shells), time.Since(start).Round(time.Millisecond))
}

// runSnippet runs script with shell in the directory work, with the go
// shim first on PATH, in a process group of its own. It returns once the
// shell has exited and no process of the group is left; any that is, it
// kills, and that is an error.
func runSnippet(t *testing.T, shell, script, work, bin string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell, script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "TETHER_TEST_BIN="+tetherBin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second // for the pipes, should a server outlive the shell
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	err = cmd.Wait()
	if syscall.Kill(-pgid, 0) == nil {
		syscall.Kill(-pgid, syscall.SIGKILL)
		if err == nil {
			err = errors.New("processes of the snippet outlived it")
		}
	}
	return out.String(), errOut.String(), err
}
