// Command tether listens and connects wherever an endpoint string says:
// a port forwarder, test server and netcat driven by Twisted-style endpoint
// strings such as tcp:8080:interface=127.0.0.1 or unix:/run/app.sock.
//
// Run `tether --help` for the subcommands and `tether types` for the
// endpoint types and their arguments.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/tether-endpoints/tether/endpoint"
)

// Exit codes, documented in --help.
const (
	exitOK      = 0
	exitFailure = 1 // something failed at run time: a port in use, a refused connection
	exitUsage   = 2 // bad usage or a bad endpoint string
)

// A command is one subcommand of tether.
type command struct {
	name    string
	summary string
	// run gets the arguments after the subcommand's name.
	run func(env *env, args []string) int
}

// env is what a subcommand may touch, so tests can run it in-process.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// restartable says tether runs as its own process, which may hand
	// its listeners on to a new one at SIGHUP (restart.go): not when a
	// test runs a command in-process.
	restartable bool
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

const mainUsage = `tether: listen and connect wherever an endpoint string says.

Usage:
  tether COMMAND [ARGUMENTS]
  tether help COMMAND
  tether version

Commands:
%s
Endpoint strings are Twisted's: TYPE:ARG:KEY=VALUE..., for example
  tcp:8080                      listen on port 8080, every IPv4 address
  tcp:8080:interface=[::1]      listen on ::1
  unix:/run/app.sock:mode=660   a UNIX socket with a lock file
  tcp:example.com:443           (as a client) connect, racing IPv6 and IPv4
Run "tether types" for every type and argument, "tether help COMMAND" (or
"tether COMMAND --help") for one command. Flags may come before or after
the endpoint strings; "--" ends them.

Exit codes: 0 success, 1 failure at run time, 2 bad usage or a bad endpoint string.
`

func usage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, mainUsage, b.String())
}

func run(e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(e.stdout)
		return exitOK
	case "help":
		return runHelp(e, args[1:])
	case "-version", "--version":
		return runVersion(e, args[1:])
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "tether: unknown command %q (run tether --help)\n", endpoint.Redact(args[0]))
		return exitUsage
	}
	return c.run(e, args[1:])
}

// runHelp is "tether help [COMMAND]": the top-level help, or the
// command's own, as "tether COMMAND --help" prints it.
func runHelp(e *env, args []string) int {
	switch {
	case len(args) == 0 || (len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help")):
		usage(e.stdout)
		return exitOK
	case len(args) == 1:
		if c, ok := commands[args[0]]; ok {
			return c.run(e, []string{"--help"})
		}
		fmt.Fprintf(e.stderr, "tether help: unknown command %q (run tether --help)\n", endpoint.Redact(args[0]))
	default:
		fmt.Fprintln(e.stderr, "tether help: want one COMMAND (run tether --help)")
	}
	return exitUsage
}

func init() {
	register(&command{name: "version", summary: "print tether's version and the revision it was built from", run: runVersion})
}

// runVersion is "tether version" and "tether --version".
func runVersion(e *env, args []string) int {
	if len(args) > 0 {
		if len(args) == 1 && (args[0] == "--help" || args[0] == "-h" || args[0] == "-help") {
			fmt.Fprint(e.stdout, "Usage: tether version\n\nPrints the module version and the version control revision tether was built from.\n")
			return exitOK
		}
		fmt.Fprintln(e.stderr, "tether version: takes no arguments")
		return exitUsage
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	fmt.Fprintln(e.stdout, versionLine(bi))
	return exitOK
}

// versionLine says what tether was built from: the module version (which
// "go install ...@v1.2.3" sets, and a build in a work tree leaves as
// "(devel)"), the VCS revision and whether the tree had changes not yet
// committed, and the Go version.
func versionLine(bi *debug.BuildInfo) string {
	if bi == nil {
		return "tether: no build information (built without module support)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	line := "tether " + v
	switch {
	case rev == "":
		line += ", revision unknown"
	case modified == "true":
		line += ", revision " + rev + " with uncommitted changes"
	default:
		line += ", revision " + rev
	}
	if bi.GoVersion != "" {
		line += ", built with " + bi.GoVersion
	}
	return line
}

func main() {
	os.Exit(run(&env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, restartable: true}, os.Args[1:]))
}
