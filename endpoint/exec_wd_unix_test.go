//go:build unix

package endpoint

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestExecRelativeProgramFixedAtParse: a relative program, or dir=, is
// the one in the working directory when the string is parsed (and
// checked), not in whatever the working directory is when Dial runs.
func TestExecRelativeProgramFixedAtParse(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	for dir, word := range map[string]string{first: "first", second: "second"} {
		if err := os.WriteFile(filepath.Join(dir, "say"), []byte("#!/bin/sh\necho "+word+"\n"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(first)
	clients := map[string]Client{}
	for _, s := range []string{"exec:./say", "exec:./say:dir=.", "exec:sh:-c:./say:dir=."} {
		c, err := ParseClient(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		clients[s] = c
	}
	if err := os.Chdir(second); err != nil {
		t.Fatal(err)
	}
	for s, c := range clients {
		conn, err := c.Dial(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		out, _ := io.ReadAll(conn)
		conn.Close()
		if string(out) != "first\n" {
			t.Errorf("%s, dialled from another directory, ran the program that said %q; want the one of the parse (first)", s, out)
		}
	}
}
