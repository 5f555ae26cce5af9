package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/tether-endpoints/tether/endpoint/driver"
)

// A restarter hands tether's listening sockets on to a new tether process,
// started from the binary on disk, on SIGHUP; and in that new process it
// takes them over. github.com/cloudflare/tableflip does the handing on:
// the sockets go to the new process as inherited descriptors, the new one
// says it is ready through a pipe, and Upgrade returns only then (or with
// why the new process failed or timed out, having killed it). The old
// process then stops accepting and drains as on SIGTERM; the kernel's
// queue of connections not yet accepted belongs to the socket, which the
// new process now accepts on, so no connection is refused.
//
// A restarter is the endpoint.Inheritor of the Options that LISTEN and
// --metrics are parsed with.
type restarter struct {
	upg      *tableflip.Upgrader
	handedOn atomic.Bool
	mu       sync.Mutex
	asked    map[string]int // how often each network and address was asked for
	// parentGone is closed once the process this one replaced has exited
	// (at once if there is none): until then tableflip refuses to
	// restart, so that at most two processes share the sockets.
	parentGone chan struct{}
	// parent is the PID of the process this one replaced, read at start:
	// once this one is ready the parent may exit at any moment, and then
	// getppid names init instead.
	parent int
}

// pidPipe is the name under which the old process hands the new one the
// write end of a pipe, for the new process's PID: tableflip does not say
// it, and the old process must tell systemd (MAINPID=).
const pidPipe = "tether-pid"

// restartTimeout bounds how long a new process may take to say it is
// ready before it is killed and the old one goes on serving.
const restartTimeout = time.Minute

// newRestarter makes the restarter for a command serving LISTEN, if LISTEN
// can be handed on and tether runs as its own process (e.restartable; not
// when a test runs it in-process, since a process may have only one). It
// returns nil and why not (for the log, at SIGHUP), or nil and "" when
// SIGHUP is to keep its usual meaning: for stdio:, a hangup ends it.
func newRestarter(e *env, listen string) (*restarter, string) {
	if !e.restartable {
		return nil, ""
	}
	a, err := driver.ServerArgs(listen)
	if err != nil {
		return nil, "" // reported when LISTEN is parsed
	}
	for a.InnerArgs != nil {
		a = a.InnerArgs
	}
	switch a.Spec.Name {
	case "tcp", "tcp6", "tls", "ssl", "unix", "systemd":
	case "stdio":
		return nil, ""
	default:
		return nil, fmt.Sprintf("a %s: LISTEN cannot be handed to another process", a.Spec.Name)
	}
	upg, err := tableflip.New(tableflip.Options{UpgradeTimeout: restartTimeout})
	if err != nil {
		return nil, "cannot restart: " + err.Error()
	}
	r := &restarter{upg: upg, asked: map[string]int{}, parentGone: make(chan struct{}), parent: os.Getppid()}
	if !upg.HasParent() {
		// Known now, not once a goroutine has run: a SIGHUP that comes
		// right after the start must not be told a parent is draining.
		close(r.parentGone)
		return r, ""
	}
	go func() {
		upg.WaitForParent(context.Background()) // an error means it has gone too
		close(r.parentGone)
	}()
	return r, ""
}

// busy says why a restart cannot start now, or "": the process this one
// replaced is still draining.
func (r *restarter) busy() string {
	select {
	case <-r.parentGone:
		return ""
	default:
		return "the process this one replaced (PID " + strconv.Itoa(r.parent) +
			") is still draining; SIGHUP again once it has exited"
	}
}

// ListenWithCallback is tableflip's, under names of tether's own. The
// network is "tether+unix", not "unix": for the sockets it knows as unix
// ones, tableflip removes the socket file when it stops, through any link
// at the path, while the endpoint package removes its socket files itself,
// never through a link, and not once they are handed on. The address gets
// "#2", "#3"... when it is asked for again: LISTEN and --metrics may both
// be tcp:0 (or share a port with reusePort=1), and the new process, with
// the same arguments, asks for them in the same order.
func (r *restarter) ListenWithCallback(network, addr string, listen func(network, addr string) (net.Listener, error)) (net.Listener, error) {
	r.mu.Lock()
	r.asked[network+" "+addr]++
	if n := r.asked[network+" "+addr]; n > 1 {
		addr += "#" + strconv.Itoa(n)
	}
	r.mu.Unlock()
	return r.upg.Fds.ListenWithCallback("tether+"+network, addr, listen)
}

// HasParent says whether this process took over from an older one.
func (r *restarter) HasParent() bool { return r.upg.HasParent() }

// HandedOn says whether this process has handed its sockets on.
func (r *restarter) HandedOn() bool { return r.handedOn.Load() }

// ready tells the process that started this one, if any, that this one
// listens (all its listeners are made: tableflip closes the inherited
// sockets not taken by then), giving it this process's PID first.
func (r *restarter) ready() error {
	if r.upg.HasParent() {
		f, err := r.upg.Fds.File(pidPipe)
		if err != nil {
			return err
		}
		if f != nil {
			_, err = fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
			if err != nil {
				return fmt.Errorf("telling the old process this one's PID: %w", err)
			}
		}
	}
	return r.upg.Ready()
}

// restartResult is how a restart ended: handedOn, with the new process's
// PID (0 if it did not say, and err says so), or why it failed, when the
// old process goes on serving.
type restartResult struct {
	handedOn bool
	pid      int
	err      error
}

// start starts a new process and hands it the sockets, in the background;
// the channel gets the result once the new process is ready or has failed.
// Only one restart runs at a time: the caller starts no other until it has
// the result.
func (r *restarter) start() <-chan restartResult {
	done := make(chan restartResult, 1)
	go func() {
		pr, pw, err := os.Pipe()
		if err != nil {
			done <- restartResult{err: err}
			return
		}
		defer pr.Close()
		// AddFile hands on a duplicate; an earlier attempt's is replaced.
		err = r.upg.Fds.AddFile(pidPipe, pw)
		pw.Close()
		if err != nil {
			done <- restartResult{err: err}
			return
		}
		if err := r.upg.Upgrade(); err != nil {
			done <- restartResult{err: err}
			return
		}
		r.handedOn.Store(true)
		pid, err := readPID(pr)
		done <- restartResult{handedOn: true, pid: pid, err: err}
	}()
	return done
}

// errNoPID says that a new process became ready without saying its PID
// (an older tether); the sockets are handed on all the same.
var errNoPID = errors.New("the new process did not say its PID")

// readPID reads the PID the new process wrote before it said it was ready,
// so it is there already; the deadline only guards against a new process
// that never writes one.
func readPID(pr *os.File) (int, error) {
	pr.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		return 0, errNoPID
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%w: it wrote %q", errNoPID, line)
	}
	return pid, nil
}

// stop ends the restarter: no restart can begin, and one in progress is
// abandoned, its new process killed, unless it has said it is ready
// already.
func (r *restarter) stop() { r.upg.Stop() }
