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
	"sort"
	"strings"
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
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

const mainUsage = `tether: listen and connect wherever an endpoint string says.

Usage:
  tether COMMAND [ARGUMENTS]

Commands:
%s
Endpoint strings are Twisted's: TYPE:ARG:KEY=VALUE..., for example
  tcp:8080                      listen on port 8080, every IPv4 address
  tcp:8080:interface=[::1]      listen on ::1
  unix:/run/app.sock:mode=660   a UNIX socket with a lock file
  tcp:example.com:443           (as a client) connect, racing IPv6 and IPv4
Run "tether types" for every type and argument, "tether COMMAND --help" for one command.

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
	case "-h", "-help", "--help", "help":
		usage(e.stdout)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(e.stderr, "tether: unknown command %q (run tether --help)\n", args[0])
		return exitUsage
	}
	return c.run(e, args[1:])
}

func main() {
	os.Exit(run(&env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
}
