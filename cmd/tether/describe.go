package main

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/endpoint/driver"
)

func init() {
	register(&command{name: "describe", summary: "check an endpoint string and print its meaning as JSON", run: runDescribe})
}

const describeUsage = `Usage: tether describe [--client] [--syntax-only] STRING

Checks an endpoint string exactly as relay, serve and connect do, and
prints one JSON object with its role, type and every argument, defaults
filled in:

  $ tether describe unix:/run/app.sock:mode=660
  {"role":"server","type":"unix","args":{"address":"/run/app.sock","mode":"0660","backlog":50,"lockfile":true,"owner":null,"group":null}}
  $ tether describe --client 'tcp:example.com:443:timeout=5'
  $ tether describe unix:/run/app.sock --client   # flags may follow the string

The checks are those of making the endpoint: the files a tls: or ssl:
string names are read (a certificate without its key, an expired one, a
missing trust root file, a file another user could change are errors), an
exec: program is looked up, an fd: or systemd: socket must have been
passed to tether, and so on. What would be logged as a warning (a private
key every user can read) is written to stderr; the exit status is still 0.
Nothing is listened on or connected to. --syntax-only checks the string
alone (its grammar, types and arguments) and reads no file, looks up no
program and looks at no socket; a string nested as a value, such as a
tls: client's endpoint=, is then shown but not checked.

Numbers are JSON numbers, flags booleans, file modes octal strings ("0666"),
an absent optional argument null. An argument whose absence means another
one's value shows that value (an ssl: server's certKey is its privateKey
file). A balance: client's backends are each described too, in order, as
"members". A secret (a proxy's password=) is shown as "xxxxx", also inside an
endpoint string given as a value. A rejected string, one nested more than
%d deep included, exits 2 with one line on stderr saying why.

Flags:
`

func runDescribe(e *env, args []string) int {
	fs := flag.NewFlagSet("describe", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	client := fs.Bool("client", false, "read STRING as a client endpoint (default: server)")
	syntaxOnly := fs.Bool("syntax-only", false, "check only the string itself: read no file, look up no program")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), describeUsage, endpoint.MaxNesting)
		fs.PrintDefaults()
	}
	pos, code, done := parseFlags(fs, args, e, nil)
	if done {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(e.stderr, "tether describe: want exactly one endpoint string (run tether describe --help)")
		return exitUsage
	}
	s := pos[0]
	// Warnings that making the endpoint logs, without the time.
	warn := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}}))
	a, err := describeArgs(s, *client, *syntaxOnly, warn)
	if err != nil {
		fmt.Fprintln(e.stderr, "tether describe:", err)
		return exitUsage
	}
	out, err := describeOutput(a)
	if err != nil {
		fmt.Fprintln(e.stderr, "tether describe:", err)
		return exitFailure
	}
	fmt.Fprintln(e.stdout, string(out))
	return exitOK
}

// describeArgs checks s as ParseServer or ParseClient does (as ServerArgs
// or ClientArgs alone with syntaxOnly) and returns its arguments.
func describeArgs(s string, client, syntaxOnly bool, log *slog.Logger) (*driver.Args, error) {
	opts := &endpoint.Options{Logger: log}
	argsOf, parse := driver.ServerArgs, func(s string) error { _, err := opts.ParseServer(s); return err }
	if client {
		argsOf, parse = driver.ClientArgs, func(s string) error { _, err := opts.ParseClient(s); return err }
	}
	a, err := argsOf(s)
	if err != nil || syntaxOnly {
		return a, err
	}
	// Making the endpoint runs every check of the string: the type's own
	// (files, programs, passed sockets) after the arguments'.
	if err := parse(s); err != nil {
		return nil, err
	}
	return a, nil
}
