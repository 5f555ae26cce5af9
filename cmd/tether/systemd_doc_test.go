//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tether-endpoints/tether/internal/testpeer"
)

const systemdAnalyzeBin = "/usr/bin/systemd-analyze"

// docUnits returns the unit files in docs/systemd.md: each fenced block
// that follows a line <!-- unit: NAME -->, by NAME.
func docUnits(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../docs/systemd.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- unit: ([^ ]+) -->\n```ini\n(.*?)```\n")
	units := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		units[m[1]] = m[2]
	}
	return units
}

// TestSystemdUnits runs systemd-analyze verify on the units in
// docs/systemd.md, as they are there except for the path of the tether
// binary (verify checks that ExecStart's program exists): the service that
// opens its port, and the socket-activated pair. Any complaint fails the
// test, warnings included (an unknown or misspelt setting is only a
// warning to systemd). The ExecStart command lines are checked too: tether
// describe must accept their endpoint strings.
func TestSystemdUnits(t *testing.T) {
	testpeer.Need(t, systemdAnalyzeBin, "systemd")
	units := docUnits(t)
	for _, name := range []string{"tether-relay.service", "tether-relay.socket", "tether-relay-activated.service"} {
		if units[name] == "" {
			t.Fatalf("docs/systemd.md has no unit %s", name)
		}
	}
	for _, tc := range []struct {
		name  string
		files map[string]string // file name: the doc's unit
	}{
		{"own port", map[string]string{"tether-relay.service": "tether-relay.service"}},
		{"socket-activated", map[string]string{"tether-relay.socket": "tether-relay.socket",
			"tether-relay.service": "tether-relay-activated.service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var paths []string
			for file, unit := range tc.files {
				text := strings.ReplaceAll(units[unit], "/usr/local/bin/tether", tetherBin)
				p := filepath.Join(dir, file)
				if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				paths = append(paths, p)
				checkExecStart(t, unit, units[unit])
			}
			cmd := exec.Command(systemdAnalyzeBin, append([]string{"verify", "--man=no"}, paths...)...)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
}

// checkExecStart checks that the endpoint strings of a unit's tether
// command line parse (systemd: ones need the sockets, so only their
// syntax), so that the doc's example does not fail at start.
func checkExecStart(t *testing.T, unit, text string) {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		cmdline, ok := strings.CutPrefix(l, "ExecStart=/usr/local/bin/tether relay ")
		if !ok {
			continue
		}
		var pos []string
		f := strings.Fields(cmdline)
		for i := 0; i < len(f); i++ {
			switch {
			case f[i] == "--metrics":
				pos = append(pos, f[i+1])
				i++
			case strings.HasPrefix(f[i], "--"):
				i++ // every other flag here takes a value
			default:
				pos = append(pos, f[i])
			}
		}
		if len(pos) != 3 {
			t.Fatalf("%s: ExecStart endpoints %q; want --metrics LISTEN CONNECT", unit, pos)
		}
		for i, s := range pos {
			args := []string{"describe", s}
			if i == 2 {
				args = []string{"describe", "--client", s}
			}
			if strings.HasPrefix(s, "systemd:") {
				args = append(args[:1], append([]string{"--syntax-only"}, args[1:]...)...)
			}
			if out, err := exec.Command(tetherBin, args...).CombinedOutput(); err != nil {
				t.Errorf("%s: tether %s: %v\n%s", unit, strings.Join(args, " "), err, out)
			}
		}
		return
	}
	if strings.HasSuffix(unit, ".service") {
		t.Errorf("%s: no ExecStart=/usr/local/bin/tether relay line", unit)
	}
}
