package endpoint

import (
	"errors"
	"fmt"
)

// A Reloader reads its files again now: a tls: or ssl: endpoint's
// certificates, keys, client CAs and trust roots, at whatever depth they
// are in the string (haproxy:tls:..., tls:...:endpoint=..., a proxy's inner
// endpoint). Open listeners and connections are not touched; the next
// handshake uses the new files. Call it, say, on SIGHUP after renewing a
// certificate. (The files are also read again by themselves when they
// change, looked at, at most once a second, at a handshake.)
//
// Every Server and Client that ParseServer and ParseClient return is a
// Reloader, so the concrete type of a listener or of a wrapper does not
// matter; so is the listener of a tls: or ssl: server. If the files cannot be used, Reload returns an *Error naming the
// argument and the file, and the configuration in use stays. An endpoint
// with no files returns an error wrapping errors.ErrUnsupported.
type Reloader interface {
	Reload() error
}

// errNothingToReload says that an endpoint reads no files.
var errNothingToReload = fmt.Errorf("nothing to reload: no certificate or key files: %w", errors.ErrUnsupported)

// reloadInner reloads what e holds, if it can be reloaded.
func reloadInner(e any) error {
	if r, ok := e.(Reloader); ok {
		return r.Reload()
	}
	return errNothingToReload
}

// Reload reads the Server's files again (see Reloader).
func (s *server) Reload() error { return reloadError(reloadInner(s.s), s.input, s.typ) }

// Reload reads the Client's files again (see Reloader).
func (c *client) Reload() error { return reloadError(reloadInner(c.c), c.input, c.typ) }

// reloadError makes err an *Error about the string the user gave. That
// there is nothing to reload is said of the whole string, not of the
// innermost endpoint that found it.
func reloadError(err error, input, typ string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errors.ErrUnsupported):
		return &Error{Op: "reload", Input: input, Type: typ, Err: errNothingToReload}
	}
	return asError(err, "reload", input, typ)
}

func (s *tlsServer) Reload() error { return s.store.reload() }

// Reload reads the client's own files, and those of the endpoint it
// connects through, if it has any.
func (c *tlsClient) Reload() error {
	err := c.store.reload()
	if c.inner == nil {
		return err
	}
	if ierr := reloadInner(c.inner); !errors.Is(ierr, errors.ErrUnsupported) {
		return errors.Join(err, ierr)
	}
	return err
}

func (s *proxyServer) Reload() error  { return reloadInner(s.inner) }
func (c *proxyClient) Reload() error  { return reloadInner(c.inner) }
func (c *tunnelClient) Reload() error { return reloadInner(c.proxy) }
