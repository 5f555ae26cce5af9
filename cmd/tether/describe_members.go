package main

import (
	"bytes"
	"encoding/json"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

// describeOutput is the JSON describe prints for a: its arguments, and, for
// a balance: client, each backend described the same way under
// "members", in order, so that what a backend string means is shown and
// not only its text. Each backend has been checked already, as part of
// the balance: string.
func describeOutput(a *driver.Args) ([]byte, error) {
	out, err := json.Marshal(a)
	if err != nil || a.Role != "client" || a.Spec.Name != "balance" {
		return out, err
	}
	var members []json.RawMessage
	for _, s := range a.Value("backends").List {
		ma, err := driver.ClientArgs(s) // which reads it without its brackets
		if err != nil {
			return nil, err
		}
		m, err := describeOutput(ma)
		if err != nil {
			return nil, err
		}
		members = append(members, m)
	}
	mj, err := json.Marshal(members)
	if err != nil {
		return nil, err
	}
	// The object's last '}' closes it: the members go just before.
	out = bytes.TrimSuffix(out, []byte("}"))
	out = append(out, `,"members":`...)
	out = append(out, mj...)
	return append(out, '}'), nil
}
