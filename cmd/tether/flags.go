package main

import (
	"flag"
	"io"
	"strconv"
	"strings"

	"github.com/tether-endpoints/tether/endpoint"
)

// parseFlags parses a subcommand's flags wherever they are among its
// arguments (relay A B --quiet is relay --quiet A B), as most command-line
// tools do, and returns the other arguments, in order. "--" ends the
// flags: everything after it is an argument, even if it begins with '-'.
// restFrom, if not nil, is asked after each argument whether those seen so
// far end the flags too (serve's exec service: what follows is COMMAND's).
//
// done says the caller should return code at once: help was asked for (the
// usage is printed on stdout) or the flags were bad (the error and the
// usage go to stderr).
func parseFlags(fs *flag.FlagSet, args []string, e *env, restFrom func(positional []string) bool) (positional []string, code int, done bool) {
	var flags []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			if restFrom != nil && restFrom(positional) {
				positional = append(positional, args[i+1:]...)
				break
			}
			continue
		}
		flags = append(flags, a)
		// A flag that takes a value and is not written -name=value takes
		// the next argument, whatever it looks like, as flag.Parse does.
		if takesValue(fs, a) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}

	// flag prints the usage itself on any error, to stderr; asked for,
	// the usage belongs on stdout, once. Its error message quotes the
	// value it refused, which may be an endpoint string given where a
	// flag's value was expected (--wait socks5:...:password=...): it is
	// printed redacted.
	usage, out := fs.Usage, fs.Output()
	var msg strings.Builder
	fs.Usage = func() {}
	fs.SetOutput(&msg)
	err := fs.Parse(flags)
	fs.Usage = usage
	fs.SetOutput(out)
	io.WriteString(out, redactArgs(msg.String(), flags))
	switch {
	case err == flag.ErrHelp:
		fs.SetOutput(e.stdout)
		usage()
		return nil, exitOK, true
	case err != nil:
		usage()
		return nil, exitUsage, true
	}
	// flags holds only flags and their values, so nothing is left over.
	return positional, 0, false
}

// redactArgs returns msg with each of args that holds a secret (an
// endpoint string with a password=, say) shown redacted, as written and
// as quoted with %q.
func redactArgs(msg string, args []string) string {
	for _, a := range args {
		texts := []string{a}
		if _, value, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
			texts = append(texts, value) // -name=value: the value is quoted alone
		}
		for _, text := range texts {
			if r := endpoint.Redact(text); r != text {
				msg = strings.ReplaceAll(msg, strconv.Quote(text), strconv.Quote(r))
				msg = strings.ReplaceAll(msg, text, r)
			}
		}
	}
	return msg
}

// redactAll returns args with each redacted (see endpoint.Redact).
func redactAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = endpoint.Redact(a)
	}
	return out
}

// takesValue says whether the flag argument a (-name or --name, without
// =value) names a flag of fs that is not boolean, and so takes the next
// argument as its value.
func takesValue(fs *flag.FlagSet, a string) bool {
	name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	if strings.Contains(name, "=") {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}
