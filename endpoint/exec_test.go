package endpoint

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

// lines is a slog.Handler that keeps the messages and attributes it is
// given, as "msg key=value ...".
type lines struct {
	mu    sync.Mutex
	attrs []slog.Attr
	got   *[]string
}

func newLines() *lines { return &lines{got: new([]string)} }

func (h *lines) Enabled(context.Context, slog.Level) bool { return true }
func (h *lines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.got = append(*h.got, b.String())
	return nil
}
func (h *lines) WithAttrs(as []slog.Attr) slog.Handler {
	return &lines{attrs: append(append([]slog.Attr(nil), h.attrs...), as...), got: h.got}
}
func (h *lines) WithGroup(string) slog.Handler { return h }
func (h *lines) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(*h.got, "\n")
}

// execDial dials an exec: string with a short grace, logging to log.
func execDial(t *testing.T, ctx context.Context, s string, log *lines) (*ExecConn, error) {
	t.Helper()
	cli, err := ParseClient(s)
	if err != nil {
		t.Fatal(err)
	}
	ec := cli.(*client).c.(*execClient)
	ec.grace = 300 * time.Millisecond
	if log != nil {
		ec.log = slog.New(log)
	}
	c, err := cli.Dial(ctx)
	if err != nil {
		return nil, err
	}
	return c.(*ExecConn), nil
}

func TestExecCat(t *testing.T) {
	checkGoroutines(t)
	c, err := execDial(t, context.Background(), "exec:cat", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := c.RemoteAddr(); a.Network() != "exec" || !strings.HasPrefix(a.String(), "cat[") {
		t.Errorf("RemoteAddr %s %s", a.Network(), a)
	}
	io.WriteString(c, "half")
	// Half-close: cat sees the end of its input, writes the rest and exits.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "half" {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ps := c.ProcessState(); ps == nil || ps.ExitCode() != 0 {
		t.Errorf("ProcessState %v", ps)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) && err != io.EOF {
		t.Errorf("Read after Close: %v", err)
	}
}

func TestExecExitStatus(t *testing.T) {
	checkGoroutines(t)
	log := newLines()
	// The shell reads all its input, says so on stderr, answers, and exits 3.
	c, err := execDial(t, context.Background(), `exec:sh:-c:n\=$(wc -c); echo "read $n" >&2; echo "got $n"; exit 3`, log)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "12345")
	c.CloseWrite()
	got, _ := io.ReadAll(c)
	if strings.TrimSpace(string(got)) != "got 5" {
		t.Errorf("read %q", got)
	}
	if err := c.Wait(); err == nil {
		t.Error("Wait: nil error for exit status 3")
	}
	err = c.Close()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Close = %v, want an error wrapping *exec.ExitError with status 3", err)
	}
	if !strings.Contains(err.Error(), "exit status 3") || strings.Contains(err.Error(), "stopped by tether") {
		t.Errorf("Close error %q", err)
	}
	if c.ProcessState().ExitCode() != 3 {
		t.Errorf("exit code %d", c.ProcessState().ExitCode())
	}
	if !strings.Contains(log.String(), `exec: stderr line=read 5 program=sh pid=`) {
		t.Errorf("log:\n%s", log)
	}
}

func TestExecEnvAndDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LISTEN_FDS", "7") // never passed on
	c, err := execDial(t, context.Background(),
		`exec:sh:-c:printf '%s|' "$A" "$B" "$C" "$LISTEN_FDS" "$(pwd)":env=[A=1,B=x\\,y:z,C=]:dir=`+Quote(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "1|x,y:z|||" + dir + "|"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Close stops a program that is still running: with SIGTERM, or with
// SIGKILL if it ignores that.
func TestExecCloseStops(t *testing.T) {
	checkGoroutines(t)
	for _, tt := range []struct {
		script, signal string
	}{
		{"exec:sleep:60", "terminated"},
		// The shell and the sleep it starts (its process group) ignore SIGTERM.
		{`exec:sh:-c:trap '' TERM; echo ready; sleep 60; echo not stopped`, "killed"},
	} {
		c, err := execDial(t, context.Background(), tt.script, nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(tt.script, "ready") {
			buf := make([]byte, 6)
			io.ReadFull(c, buf) // the trap is set
		}
		start := time.Now()
		err = c.Close()
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: Close took %v", tt.script, took)
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(err.Error(), "signal: "+tt.signal) ||
			!strings.Contains(err.Error(), "stopped by tether") {
			t.Errorf("%s: Close = %v, want signal: %s", tt.script, err, tt.signal)
		}
		if err := signalZero(c.Pid()); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s: process %d still there: %v", tt.script, c.Pid(), err)
		}
	}
}

func TestExecDialCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := execDial(t, ctx, "exec:cat", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a cancelled context: %v", err)
	}
}

// A program that ends its output and exits by itself is not signalled,
// even if the connection is closed before it has exited.
func TestExecCloseAfterEOF(t *testing.T) {
	c, err := execDial(t, context.Background(), `exec:sh:-c:exec >&-; sleep 0.1; exit 0`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(c); err != nil || len(got) != 0 {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestExecParse(t *testing.T) {
	if got, want := describe(t, "client", `exec:sh:-c:echo a\=b\:c:env=[A=1,B=2]:path=/`),
		`{"role":"client","type":"exec","args":{"argv":["sh","-c","echo a=b:c"],"env":"xxxxx","dir":"/"}}`; got != want { // env= is a secret
		t.Errorf("describe:\n got %s\nwant %s", got, want)
	}
	if got := Redact(`exec:curl:-sK-:env=[TOKEN=abc:d,LANG=C]:dir=/`); strings.Contains(got, "abc") || got != `exec:curl:-sK-:env=xxxxx:dir=/` {
		t.Errorf("Redact of an exec: string with a token in env= = %q", got)
	}
	for in, msg := range map[string]string{
		"exec":                      `argv: missing (required)`,
		"exec:":                     `argv: empty, but required`,
		"exec::x":                   `argv: the program (the first argument) is empty`,
		"exec:no-such-program-here": `argv: "no-such-program-here": executable file not found in $PATH`,
		"exec:cat:dir=/nonexistent": `dir "/nonexistent" is not a directory`,
		"exec:cat:env=A":            `env: entry "A" is not NAME=VALUE`,
		"exec:cat:env==1":           `env: entry "=1" is not NAME=VALUE`,
		"exec:cat:colour=red":       `unknown argument "colour" (exec takes argv, env, dir)`,
		"exec:cat:echo a=b":         `unknown argument "echo a"`,
	} {
		_, err := ParseClient(in)
		if !errors.Is(err, ErrBadArgument) || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseClient(%q) = %v, want %q", in, err, msg)
		}
	}
}

func TestParseExecEnv(t *testing.T) {
	for in, want := range map[string][]string{
		"":                      nil,
		"A=1":                   {"A=1"},
		"A=1,B=2":               {"A=1", "B=2"},
		"[PATH=/bin:/usr/bin]":  {"PATH=/bin:/usr/bin"},
		`A=x\,y,B=\\`:           {"A=x,y", `B=\`},
		"A=,B=b=c,,":            {"A=", "B=b=c"},
		`A=[1]`:                 {"A=[1]"},
		"[A=1,B=[2]]":           {"A=1", "B=[2]"},
		"LANG=C.UTF-8,TZ=UTC,X": nil,
		`A\=B=1`:                nil,
		`A=1\`:                  nil,
	} {
		got, err := parseExecEnv(in)
		if want == nil && in != "" {
			if err == nil {
				t.Errorf("parseExecEnv(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseExecEnv(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// The program's input and output are pipes, so deadlines work.
func TestExecDeadline(t *testing.T) {
	c, err := execDial(t, context.Background(), "exec:cat", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past the deadline: %v", err)
	}
}

// The Variadic extension of Spec: only the last positional argument may
// be variadic, and given by keyword it takes one value.
func TestVariadicArg(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("a variadic argument before another positional one was registered")
		}
	}()
	if got, want := describe(t, "client", "exec:argv=cat"),
		`{"role":"client","type":"exec","args":{"argv":["cat"],"env":null,"dir":null}}`; got != want {
		t.Errorf("describe: got %s, want %s", got, want)
	}
	if _, err := ParseClient("exec:cat:argv=x"); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("argv given both ways: %v", err)
	}
	driver.RegisterClient(driver.ClientType{Spec: driver.Spec{Name: "badvariadic", Args: []driver.Arg{
		{Name: "a", Positional: true, Variadic: true}, {Name: "b", Positional: true}}},
		New: func(*driver.Args) (driver.Client, error) { return nil, nil }})
}

// TestExecKilledIsNotAnEnd: a program killed by a signal ends its output
// with the kill, and Read says so instead of returning io.EOF, so that a
// relay resets its peer rather than pass the cut on as a clean end; a
// program that exits, with any status, ends with io.EOF.
func TestExecKilledIsNotAnEnd(t *testing.T) {
	for s, killed := range map[string]bool{
		`exec:sh:-c:echo partial; kill -9 $$`: true,
		`exec:sh:-c:echo partial; exit 3`:     false,
	} {
		c, err := execDial(t, context.Background(), s, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		if string(got) != "partial\n" {
			t.Errorf("%s: read %q", s, got)
		}
		if killed && (err == nil || !strings.Contains(err.Error(), "killed by signal")) {
			t.Errorf("%s: Read ended with %v; want an error naming the signal", s, err)
		}
		if !killed && err != nil {
			t.Errorf("%s: Read ended with %v; want io.EOF", s, err)
		}
		c.Close()
	}
}
