package endpoint

import (
	"net"
)

// An Inheritor hands listening sockets from a process to the process that
// replaces it, for a restart or upgrade that refuses no connection: the
// new process accepts on the very sockets the old one listened on, so the
// kernel's queue of connections not yet accepted carries over. Set as
// Options.Inherit, it is asked for the listening socket of every tcp and
// tcp6 server (and so of the tls:, ssl: and haproxy: servers around one),
// every unix server and every systemd: server that the Options make.
// github.com/cloudflare/tableflip's Upgrader has the methods, except that
// HandedOn is the caller's to keep (Upgrade returned nil).
//
// A unix server's socket inherited from the previous process keeps its
// file, mode and owner; its lock file (lockfile=1) is taken over, made to
// name this process, if the previous process (the parent) or no live one
// holds it. Once HandedOn, a unix listener's Close leaves the socket file
// and the lock to the new process. A tcp server's inherited socket keeps
// every socket option set on it (reusePort=, ipv6Only=, userTimeout=, the
// backlog); keep-alive and noDelay=, which Go sets on each connection it
// accepts, are set as the string says. A systemd: string parsed in a
// process that HasParent and was not socket-activated itself is checked
// when it is listened on, not when parsed: its socket comes from the parent,
// under the index= or name= it was chosen by.
//
// fd: servers are not handed on: a descriptor number means nothing in
// another process. Neither are stdio:'s standard input and output.
type Inheritor interface {
	// ListenWithCallback returns the listener the previous process handed
	// on under network and addr, if there is one; else it calls listen
	// and keeps the listener listen returns (which implements
	// syscall.Conn), to hand it on to the next process.
	ListenWithCallback(network, addr string, listen func(network, addr string) (net.Listener, error)) (net.Listener, error)
	// HasParent reports whether this process replaced one that handed its
	// sockets on.
	HasParent() bool
	// HandedOn reports whether this process has handed its sockets on to
	// a new process, which serves them now.
	HandedOn() bool
}

// inheritListen gets a listener through in (nil: listen makes it), and
// says whether it was inherited rather than made by listen. listen's own
// error is returned as it is, so that errors.Is and a Listen hint survive
// whatever in does with it.
func inheritListen(in Inheritor, network, addr string, listen func() (net.Listener, error)) (ln net.Listener, inherited bool, err error) {
	if in == nil {
		ln, err = listen()
		return ln, false, err
	}
	made := false
	var listenErr error
	ln, err = in.ListenWithCallback(network, addr, func(string, string) (net.Listener, error) {
		made = true
		l, err := listen()
		listenErr = err
		return l, err
	})
	if listenErr != nil {
		return nil, false, listenErr
	}
	return ln, !made && err == nil, err
}
