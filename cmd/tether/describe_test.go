package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// runCmd runs tether in-process and returns its exit code and output.
func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(&env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}, args)
	return code, out.String(), errOut.String()
}

func TestDescribe(t *testing.T) {
	code, out, errOut := runCmd("describe", "tcp:80")
	want := `{"role":"server","type":"tcp","args":{"port":80,"interface":"","backlog":50}}` + "\n"
	if code != exitOK || out != want || errOut != "" {
		t.Fatalf("describe tcp:80 = %d, %q, %q", code, out, errOut)
	}
	code, out, _ = runCmd("describe", "--client", "unix:/run/x.sock:lockfile=1")
	var v map[string]any
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v["role"] != "client" {
		t.Fatalf("describe --client = %d, %q", code, out)
	}
}

func TestDescribeRejects(t *testing.T) {
	for _, args := range [][]string{
		{"describe", "tcp:http"},
		{"describe", "nosuch:1"},
		{"describe", `tcp:80\`},
		{"describe", "--client", "tcp:localhost"},
	} {
		code, out, errOut := runCmd(args...)
		if code != exitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, args[len(args)-1]) {
			t.Errorf("%q = %d, stdout %q, stderr %q; want exit 2 and one line naming the string", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"describe"}, {"describe", "a", "b"}, {"describe", "--nosuch", "tcp:80"}, {"nosuch"}, {}} {
		if code, _, _ := runCmd(args...); code != exitUsage {
			t.Errorf("%q = %d, want %d", args, code, exitUsage)
		}
	}
	for _, cmd := range []string{"describe", "types", "relay", "serve", "connect"} {
		code, out, errOut := runCmd(cmd, "--help")
		if code != exitOK || strings.Count(out, "Usage: tether "+cmd) != 1 || errOut != "" {
			t.Errorf("%s --help = %d, stdout %q, stderr %q; want the usage once, on stdout", cmd, code, out, errOut)
		}
	}
	if code, _, errOut := runCmd("describe", "--nosuch"); code != exitUsage || strings.Count(errOut, "Usage: tether describe") != 1 {
		t.Errorf("describe --nosuch = %d, stderr %q; want exit 2 and the usage once", code, errOut)
	}
}

func TestTypes(t *testing.T) {
	code, out, _ := runCmd("types")
	if code != exitOK {
		t.Fatalf("types = %d", code)
	}
	for _, want := range []string{"tcp:PORT[:INTERFACE[:BACKLOG]]", "tcp6:PORT[:BACKLOG[:INTERFACE]]",
		"unix:ADDRESS[:MODE[:BACKLOG[:LOCKFILE]]]", "tcp:HOST:PORT", "checkPID (or lockfile)", "default 50"} {
		if !strings.Contains(out, want) {
			t.Errorf("tether types lacks %q", want)
		}
	}
}

// TestReferenceIsCurrent fails when docs/reference.md no longer matches
// the argument declarations it is generated from.
func TestReferenceIsCurrent(t *testing.T) {
	code, out, _ := runCmd("types", "--markdown")
	if code != exitOK {
		t.Fatalf("types --markdown = %d", code)
	}
	have, err := os.ReadFile("../../docs/reference.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(have) != out {
		t.Fatal("docs/reference.md is stale: run go run ./cmd/tether types --markdown > docs/reference.md")
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := runCmd("--help")
	if code != exitOK || !strings.Contains(out, "describe") || !strings.Contains(out, "Exit codes") {
		t.Fatalf("--help = %d, %q", code, out)
	}
}
