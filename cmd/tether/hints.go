package main

import (
	"fmt"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/endpoint/driver"
)

// warnInsecure warns, once, when the client string s turns off the
// verification of a TLS server's certificate (insecureSkipVerify=1) at any
// depth: in s itself, in a wrapper's inner string, or in a string given as
// a tls: client's endpoint= or a proxy client's proxy=.
func warnInsecure(e *env, cmd, s string) {
	if clientInsecure(s, 0) {
		fmt.Fprintf(e.stderr, "tether %s: WARNING: insecureSkipVerify=1: the server's certificate is NOT verified; "+
			"anyone in the path can read and change the connection (for tests only)\n", cmd)
	}
}

// nestedClientArgs are the string arguments whose value is a client
// endpoint string of its own.
var nestedClientArgs = map[string]bool{"endpoint": true, "proxy": true}

// clientInsecure says whether the client string s, or one nested in it,
// sets insecureSkipVerify. A string that does not parse sets nothing.
func clientInsecure(s string, depth int) bool {
	if depth > endpoint.MaxNesting {
		return false
	}
	a, err := driver.ClientArgs(s)
	if err != nil {
		return false
	}
	for ; a != nil; a = a.InnerArgs {
		for _, v := range a.Values {
			switch {
			case v.Absent:
			case v.Arg.Name == "insecureSkipVerify" && v.Arg.Kind == driver.Bool && v.Num != 0:
				return true
			case nestedClientArgs[v.Arg.Name] && v.Arg.Kind == driver.String && v.Given:
				if clientInsecure(v.Str, depth+1) {
					return true
				}
			}
		}
	}
	return false
}

// looksSwapped says whether relay's two strings look given in the wrong
// order: LISTEN is no server string but is a client one, and CONNECT is a
// server string (tether relay tcp:127.0.0.1:8080 tcp:9000).
func looksSwapped(listen, connect string) bool {
	if _, err := driver.ServerArgs(listen); err == nil {
		return false
	}
	if _, err := driver.ClientArgs(listen); err != nil {
		return false
	}
	_, err := driver.ServerArgs(connect)
	return err == nil
}
