package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/tether-endpoints/tether/endpoint"
)

func init() {
	register(&command{name: "connect", summary: "connect to an endpoint and join it to stdin and stdout, like netcat", run: runConnect})
}

const connectUsage = `Usage: tether connect CONNECT

Connects to the client endpoint CONNECT, copies standard input to the
connection and the connection to standard output. The end of standard input
closes the connection's write half (the peer sees end of file) and the
connection stays open for the reply; tether exits when the peer has finished
sending.

  $ printf 'GET / HTTP/1.0\r\nHost: example.com\r\n\r\n' | tether connect tcp:example.com:80
  $ tether connect unix:/run/app.sock < request.bin > reply.bin
  $ tar c dir | tether connect 'tcp:[2001:db8::7]:9000:timeout=5'

Exit codes: 0 when the peer finished, 1 if connecting or the transfer
failed, 2 for bad usage or an endpoint string that does not parse.
`

func runConnect(e *env, args []string) int {
	fs := flag.NewFlagSet("connect", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), connectUsage) }
	if code, done := parseFlags(fs, args, e); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(e.stderr, "tether connect: want one CONNECT endpoint string (run tether connect --help)")
		return exitUsage
	}
	cli, err := endpoint.ParseClient(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(e.stderr, "tether connect:", err)
		return exitUsage
	}
	conn, err := cli.Dial(context.Background())
	if err != nil {
		fmt.Fprintln(e.stderr, "tether connect:", err)
		return exitFailure
	}
	defer conn.Close()

	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, e.stdin)
		if err == nil {
			err = closeWrite(conn)
		}
		sent <- err
	}()
	_, err = io.Copy(e.stdout, conn)
	if err == nil {
		// The peer has finished. Standard input may still be open (the
		// peer did not wait for it), which is no failure; an error in
		// sending that has already happened is.
		select {
		case err = <-sent:
		default:
		}
	}
	if err != nil {
		// The stream was cut: the peer must not take it for a whole one.
		endpoint.Abort(conn)
		fmt.Fprintln(e.stderr, "tether connect:", err)
		return exitFailure
	}
	return exitOK
}
