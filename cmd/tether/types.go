package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

func init() {
	register(&command{name: "types", summary: "list the endpoint types and their arguments", run: runTypes})
}

const typesUsage = `Usage: tether types [--markdown]

Lists every registered endpoint type, server and client, with its arguments:
positional ones in their order, each with its kind, default and meaning.
With --markdown it writes the string reference (docs/reference.md is made so).

Flags:
`

func runTypes(e *env, args []string) int {
	fs := flag.NewFlagSet("types", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	markdown := fs.Bool("markdown", false, "write the reference in Markdown")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), typesUsage)
		fs.PrintDefaults()
	}
	pos, code, done := parseFlags(fs, args, e, nil)
	if done {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintln(e.stderr, "tether types: takes no arguments (run tether types --help)")
		return exitUsage
	}
	var servers, clients []driver.Spec
	for _, t := range driver.ServerTypes() {
		servers = append(servers, t.Spec)
	}
	for _, t := range driver.ClientTypes() {
		clients = append(clients, t.Spec)
	}
	if *markdown {
		writeReference(e.stdout, servers, clients)
		return exitOK
	}
	writeTypes(e.stdout, "Server", servers)
	fmt.Fprintln(e.stdout)
	writeTypes(e.stdout, "Client", clients)
	return exitOK
}

// synopsis writes a type's form: the type, its positional arguments in
// order (optional ones in brackets), then its keyword-only arguments.
func synopsis(s driver.Spec) string {
	var b strings.Builder
	b.WriteString(s.Name)
	opened := 0
	for _, a := range s.Args {
		if !a.Positional {
			continue
		}
		name := strings.ToUpper(a.Name)
		if a.Variadic {
			name += "..."
		}
		if a.Required {
			b.WriteString(":" + name)
		} else {
			b.WriteString("[:" + name)
			opened++
		}
	}
	b.WriteString(strings.Repeat("]", opened))
	if s.Wrapper {
		b.WriteString(":INNER")
	}
	for _, a := range s.Args {
		switch {
		case a.Positional:
		case a.Required:
			fmt.Fprintf(&b, ":%s=...", a.Name)
		default:
			fmt.Fprintf(&b, "[:%s=...]", a.Name)
		}
	}
	return b.String()
}

// kindText names an argument's kind, and says when its value is secret
// (never shown in errors, logs or describe).
func kindText(a driver.Arg) string {
	if a.Secret {
		return a.Kind.String() + ", secret"
	}
	return a.Kind.String()
}

// defaultText says what an absent argument means.
func defaultText(a driver.Arg) string {
	switch {
	case a.Required:
		return "required"
	case a.DefaultFrom != "":
		return "default: the " + a.DefaultFrom + " value"
	case a.Default == "" && a.EmptyDefault:
		return `default ""`
	case a.Default == "":
		return "optional"
	default:
		return "default " + a.Default
	}
}

func writeTypes(w io.Writer, role string, specs []driver.Spec) {
	fmt.Fprintf(w, "%s types:\n", role)
	for _, s := range specs {
		fmt.Fprintf(w, "\n  %s\n      %s\n", synopsis(s), s.Help)
		for _, a := range s.Args {
			name := a.Name
			if len(a.Aliases) > 0 {
				name += " (or " + strings.Join(a.Aliases, ", ") + ")"
			}
			fmt.Fprintf(w, "    %-22s %-12s %-14s %s\n", name, kindText(a), defaultText(a), a.Help)
		}
	}
}

const referenceIntro = `# Endpoint string reference

This page is generated from the argument declarations in the code by
` + "`tether types --markdown`" + `; a test fails when it is stale. Regenerate it with
` + "`go run ./cmd/tether types --markdown > docs/reference.md`" + `.

An endpoint string is TYPE, then arguments separated by ':'. Positional
arguments come in the order shown; any argument may be given by name as
KEY=VALUE, in any order. A backslash makes the next character literal
(` + "`\\:` `\\=` `\\\\`" + `), and a value that begins with '[' runs to its matching ']' (brackets nest)
(` + "`tcp:80:interface=[::1]`" + `). A secret argument's value is shown as xxxxx in
errors, logs and ` + "`tether describe`" + ` (see endpoint.Redact).
`

func writeReference(w io.Writer, servers, clients []driver.Spec) {
	fmt.Fprint(w, referenceIntro)
	for _, group := range []struct {
		role  string
		specs []driver.Spec
	}{{"Server", servers}, {"Client", clients}} {
		fmt.Fprintf(w, "\n## %s types\n", group.role)
		for _, s := range group.specs {
			fmt.Fprintf(w, "\n### %s (%s)\n\n`%s`\n\n%s.\n", s.Name, strings.ToLower(group.role), synopsis(s), s.Help)
			if s.Notes != "" {
				fmt.Fprintf(w, "\n%s\n", s.Notes)
			}
			if len(s.Args) == 0 {
				continue
			}
			fmt.Fprint(w, "\n| argument | kind | default | meaning |\n|---|---|---|---|\n")
			for _, a := range s.Args {
				name := "`" + a.Name + "`"
				for _, al := range a.Aliases {
					name += " or `" + al + "`"
				}
				if a.Positional {
					name += " (positional)"
				}
				cell := strings.NewReplacer("|", `\|`)
				fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, kindText(a), cell.Replace(defaultText(a)), cell.Replace(a.Help))
			}
		}
	}
}
