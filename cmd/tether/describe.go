package main

import (
	"encoding/json"
	"flag"
	"fmt"

	"github.com/tether-endpoints/tether/endpoint"
)

func init() {
	register(&command{name: "describe", summary: "check an endpoint string and print its meaning as JSON", run: runDescribe})
}

const describeUsage = `Usage: tether describe [--client] STRING

Checks an endpoint string and prints one JSON object with its role, type and
every argument, defaults filled in:

  $ tether describe tcp:80
  {"role":"server","type":"tcp","args":{"port":80,"interface":"","backlog":50}}
  $ tether describe --client 'tcp:example.com:443:timeout=5'

Numbers are JSON numbers, flags booleans, file modes octal strings ("0666"),
an absent optional argument null. A secret (a proxy's password=) is shown as
"xxxxx", also inside an endpoint string given as a value. No file is opened
and nothing is listened on. A rejected string, one nested more than %d deep
included, exits 2 with one line on stderr saying why.

Flags:
`

func runDescribe(e *env, args []string) int {
	fs := flag.NewFlagSet("describe", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	client := fs.Bool("client", false, "read STRING as a client endpoint (default: server)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), describeUsage, endpoint.MaxNesting)
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args, e); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(e.stderr, "tether describe: want exactly one endpoint string (run tether describe --help)")
		return exitUsage
	}
	parse := endpoint.ServerArgs
	if *client {
		parse = endpoint.ClientArgs
	}
	a, err := parse(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(e.stderr, "tether describe:", err)
		return exitUsage
	}
	out, err := json.Marshal(a)
	if err != nil {
		fmt.Fprintln(e.stderr, "tether describe:", err)
		return exitFailure
	}
	fmt.Fprintln(e.stdout, string(out))
	return exitOK
}

// parseFlags parses a subcommand's flags; done says the caller should
// return code at once (help was asked for, or the flags were bad).
func parseFlags(fs *flag.FlagSet, args []string, e *env) (code int, done bool) {
	// flag prints the usage itself on any error, to stderr; asked for,
	// the usage belongs on stdout, once.
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case err == flag.ErrHelp:
		fs.SetOutput(e.stdout)
		usage()
		return exitOK, true
	case err != nil:
		usage()
		return exitUsage, true
	}
	return 0, false
}
