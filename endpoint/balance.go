package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/balance"
)

// The balance client's arguments.
var (
	balanceBackendsParam = driver.ListParam("backends",
		"the client endpoint strings, one per segment, each in brackets: [tcp:10.0.0.1:80]:[tcp:10.0.0.2:80]").Required()
	balancePolicyParam = driver.StringParam("policy",
		"the order each connection tries the backends in: roundrobin, first (failover), random or leastconn").Default("roundrobin")
	balanceTimeoutParam = timeoutParam.Help("seconds the whole attempt, across every backend tried, may take")
)

func init() {
	driver.RegisterClient(driver.ClientType{
		Spec: driver.Spec{
			Name: "balance",
			Help: "connect to one of several client endpoints: failover and load balancing (haproxy's balance policies)",
			Args: []driver.Arg{balanceBackendsParam.Arg(), balancePolicyParam.Arg(), balanceTimeoutParam.Arg()},
			Notes: "Not in Twisted; named after haproxy's balance directive, whose algorithm names policy= takes. " +
				"Each backend is any client endpoint string, written in brackets so that its ':' need no escaping: " +
				"`balance:[tcp:10.0.0.1:80]:[tcp:10.0.0.2:80]:policy=first`, " +
				"`balance:[tls:api.example.com:443]:[unix:/run/api.sock]`. Brackets nest, so a backend's own are written " +
				"as they are (`[tcp:[::1]:80]`); inside them a backslash escapes as anywhere, so a backend's own " +
				"backslashes are doubled (or write the backend with endpoint.Quote instead of brackets). " +
				"tether relay LISTEN CONNECT CONNECT... writes this string for you. Policies: roundrobin (the " +
				"default, as in haproxy) starts each connection at the next backend; first tries them in the " +
				"order given, so the first that works takes everything (failover); random starts anywhere; " +
				"leastconn starts at the backend with the fewest connections open from this endpoint (counted " +
				"until each is closed; tether relay still splices them). A backend whose dial fails is passed over for 1 second, doubling at " +
				"each failure in a row up to 30, and tried first again after that; a success ends its backoff. " +
				"When a dial fails the next backend is tried at once, backed-off ones last, all within the one " +
				"timeout=, which each attempt gets a share of (what is left divided by the backends left to " +
				"try, but at least 2 seconds, as Go's net.Dialer shares it among a name's addresses) besides " +
				"its own string's timeout=. When every backend fails the error names each one (secrets " +
				"redacted) and why. A backend's failure is logged (Options.Logger) as a warning, and its return.",
		},
		New: newBalanceClient,
	})
}

type balanceClient struct {
	input   string // for the error, which must name it: asError would take a backend's for it
	members []Client
	names   []string // the members' strings, redacted, for messages
	pool    *balance.Pool
	policy  balance.Policy
	env     *driver.Env
}

func newBalanceClient(a *driver.Args) (driver.Client, error) {
	policy, ok := balance.ParsePolicy(balancePolicyParam.Get(a))
	if !ok {
		return nil, balancePolicyParam.Errorf(a, "a policy: "+strings.Join(balance.Policies, ", "))
	}
	c := &balanceClient{input: a.Input, policy: policy, env: a.Env}
	for i, s := range balanceBackendsParam.Get(a) {
		s = driver.Unbracket(s)
		m, err := a.Env.ParseClient(s)
		if err != nil {
			return nil, argError(a, "backends", fmt.Sprintf("backend %d: %v", i+1, err), err)
		}
		c.members = append(c.members, m)
		c.names = append(c.names, Redact(s))
	}
	c.pool = balance.New(len(c.members), policy)
	return c, nil
}

// minAttempt is the least time one attempt gets of what is left, unless
// less is left: Go's net.Dialer gives each of a name's addresses the same.
const minAttempt = 2 * time.Second

// attemptContext bounds one of left attempts at something within ctx: a
// share of the time ctx has left, so that one target that does not answer
// cannot take all of it from those after it.
func attemptContext(ctx context.Context, left int) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || left <= 1 {
		return context.WithCancel(ctx)
	}
	remaining := time.Until(dl)
	share := remaining / time.Duration(left)
	if share < minAttempt {
		share = min(minAttempt, remaining)
	}
	return context.WithTimeout(ctx, share)
}

// Dial tries the backends in the order the policy gives until one
// connects.
func (c *balanceClient) Dial(ctx context.Context) (net.Conn, error) {
	order := c.pool.Order()
	failed := &backendsError{noun: "backend"}
	for k, i := range order {
		label := fmt.Sprintf("endpoint %q", c.names[i])
		if ctx.Err() != nil {
			failed.add(label, errNotTried)
			continue
		}
		actx, cancel := attemptContext(ctx, len(order)-k)
		conn, err := c.members[i].Dial(actx)
		cancel()
		if err == nil {
			if c.pool.Succeeded(i) {
				c.env.Log().Info("balance: backend is back", "backend", c.names[i])
			}
			if k > 0 {
				c.pool.Took(i)
			}
			if c.policy == balance.LeastConn {
				return countConn(conn, c.pool, i), nil
			}
			return conn, nil
		}
		failed.add(label, err)
		if ctx.Err() == nil {
			// The backend failed, or took more than its share: not a
			// cancelled caller's doing.
			d := c.pool.Failed(i)
			c.env.Log().Warn("balance: backend failed; passed over", "backend", c.names[i],
				"for", d, "error", err)
		}
	}
	if ctx.Err() != nil {
		failed.cause = context.Cause(ctx)
	}
	return nil, &Error{Op: "dial", Input: c.input, Type: "balance", Err: failed}
}

// errNotTried stands for a backend that the time ran out before.
var errNotTried = errors.New("not tried: the time ran out")

// backendsError is the error of a dial that tried several things (a
// balance's backends, an srv's targets): why each one failed, in the
// order tried.
type backendsError struct {
	noun  string // what they are: "backend", "target"
	lines []string
	errs  []error
	cause error // the context's, if it ended
}

// add notes that the one labelled label (`endpoint "tcp:..."`, `target
// host:port`) failed with err.
func (e *backendsError) add(label string, err error) {
	var ee *Error
	if errors.As(err, &ee) && ee.Input != "" {
		// It names the backend already.
		e.lines = append(e.lines, err.Error())
	} else {
		e.lines = append(e.lines, label+": "+err.Error())
	}
	e.errs = append(e.errs, err)
}

func (e *backendsError) Error() string {
	if len(e.lines) == 1 {
		return e.lines[0]
	}
	return fmt.Sprintf("every %s failed (%d, in the order tried): %s", e.noun, len(e.lines), strings.Join(e.lines, "; "))
}

// Timeout reports whether the time ran out, as net.Error does.
func (e *backendsError) Timeout() bool { return errors.Is(e.cause, context.DeadlineExceeded) }

// Unwrap gives each backend's error, and the context's cause if it ended,
// so that errors.Is finds a refused connection or an expired timeout.
func (e *backendsError) Unwrap() []error {
	if e.cause != nil {
		return append(e.errs[:len(e.errs):len(e.errs)], e.cause)
	}
	return e.errs
}

// Reload reads the files of every backend that has some.
func (c *balanceClient) Reload() error {
	var errs []error
	some := false
	for _, m := range c.members {
		err := reloadInner(m)
		if errors.Is(err, errors.ErrUnsupported) {
			continue
		}
		some = true
		errs = append(errs, err)
	}
	if !some {
		return errNothingToReload
	}
	return errors.Join(errs...)
}

// countConn wraps a leastconn backend's connection so that closing it
// counts it closed, once. It keeps CloseWrite if the connection has it,
// and exposes the connection (NetConn) so that Abort reaches the socket.
func countConn(conn net.Conn, pool *balance.Pool, i int) net.Conn {
	pool.Acquire(i)
	c := &countedConn{Conn: conn, release: sync.OnceFunc(func() { pool.Release(i) })}
	if _, ok := conn.(closeWriter); ok {
		return &countedHalfConn{c}
	}
	return c
}

type closeWriter interface{ CloseWrite() error }

type countedConn struct {
	net.Conn
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// NetConn returns the backend's connection.
func (c *countedConn) NetConn() net.Conn { return c.Conn }

// RelaySocket returns the backend's connection too: a countedConn moves no
// bytes and holds none back, so tether relay's event core may splice the
// socket underneath and call Close when the pair ends (relay.RelaySocket).
func (c *countedConn) RelaySocket() net.Conn { return c.Conn }

// countedHalfConn is a countedConn whose connection can close its write
// half, as a relay needs to carry a half-close.
type countedHalfConn struct{ *countedConn }

func (c *countedHalfConn) CloseWrite() error { return c.Conn.(closeWriter).CloseWrite() }
