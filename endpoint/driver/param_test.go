package driver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
)

// mustPanic runs f and returns what it panicked with, failing if nothing.
func mustPanic(t *testing.T, f func()) string {
	t.Helper()
	var got any
	func() {
		defer func() { got = recover() }()
		f()
	}()
	if got == nil {
		t.Fatal("no panic")
	}
	return got.(string)
}

// TestParamGet: typed values come converted; a type that reads what its
// Spec does not declare, or reads it as another kind, panics at once (the
// first test that makes the type finds it) instead of getting a zero.
func TestParamGet(t *testing.T) {
	a, err := driver.ClientArgs("tcp:example.com:80:timeout=7")
	if err != nil {
		t.Fatal(err)
	}
	// The same names and kinds as the tcp client declares.
	var (
		timeoutParam      = driver.SecondsParam("timeout", "")
		connectPortParam  = driver.PortParam("port", "")
		bindAddressParam  = driver.HostParam("bindAddress", "")
		attemptDelayParam = driver.MillisParam("attemptDelay", "")
		tlsRootsParam     = driver.StringParam("trustRoots", "")
	)
	if got := timeoutParam.Get(a); got != 7*time.Second {
		t.Errorf("timeout = %v", got)
	}
	if got := connectPortParam.Get(a); got != 80 {
		t.Errorf("port = %d", got)
	}
	if !bindAddressParam.Absent(a) || bindAddressParam.Get(a) != "" {
		t.Error("an absent optional argument must be Absent and zero")
	}
	if got := attemptDelayParam.Get(a); got != 250*time.Millisecond || attemptDelayParam.Given(a) {
		t.Errorf("attemptDelay = %v, given %v; want the default, not given", got, attemptDelayParam.Given(a))
	}
	if msg := mustPanic(t, func() { tlsRootsParam.Get(a) }); !strings.Contains(msg, "does not declare") {
		t.Errorf("undeclared: %s", msg)
	}
	portAsText := driver.StringParam("port", "")
	if msg := mustPanic(t, func() { portAsText.Get(a) }); !strings.Contains(msg, "reads argument port as string") {
		t.Errorf("wrong kind: %s", msg)
	}
}

// TestRegisterBadDefault: a default the argument does not accept is a
// registration-time panic, not a failure of every string.
func TestRegisterBadDefault(t *testing.T) {
	bad := driver.PortParam("port", "").Default("http")
	msg := mustPanic(t, func() {
		driver.RegisterServer(driver.ServerType{Spec: driver.Spec{Name: "baddefault", Args: []driver.Arg{bad.Arg()}},
			New: func(*driver.Args) (driver.Server, error) { return nil, nil }})
	})
	if !strings.Contains(msg, `default "http"`) {
		t.Errorf("panic %q; want it to name the default", msg)
	}
}
