package endpoint

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tether-endpoints/tether/endpoint/driver"
	"github.com/tether-endpoints/tether/internal/pathguard"
)

// This file reads the PEM files of the TLS types, remembers which versions
// of them it read, and re-reads them when they change. Reading is split as
// crypto/tls splits it: a tlsLoader reads files and records their stamps,
// pure functions parse the bytes.

// A tlsFileError is a file named by an argument that could not be used. At
// parse time it becomes an *Error naming the argument; on reload it is what
// Reload returns.
type tlsFileError struct {
	Arg  string // the argument that named the file (or its directory)
	Path string
	Msg  string // what is wrong, e.g. "has no PEM certificate"
	Err  error  // the cause, or nil
}

func (e *tlsFileError) Error() string {
	if e.Path == "" {
		return "the file name is empty"
	}
	var b strings.Builder
	b.WriteString(e.Path)
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Err != nil {
		cause := e.Err
		var pe *fs.PathError
		if errors.As(cause, &pe) {
			cause = pe.Err // the path is already said
		}
		b.WriteString(": ")
		b.WriteString(cause.Error())
	}
	return b.String()
}

func (e *tlsFileError) Unwrap() error { return e.Err }

// fileArgError turns a *tlsFileError met while parsing into an *Error about
// its argument; other errors are returned as they are.
func fileArgError(a *driver.Args, err error) error {
	var fe *tlsFileError
	if !errors.As(err, &fe) {
		return err
	}
	return &Error{Op: "parse", Input: a.Input, Type: a.Spec.Name, Arg: fe.Arg, Value: a.Value(fe.Arg).Text,
		Err: driver.WrapError(ErrBadArgument, fe.Err, fe.Error())}
}

// A fileStamp identifies one version of a file or directory: replacing it
// (rename over it) changes the inode, rewriting it the size or times, and
// adding or removing a directory entry the directory's times.
type fileStamp struct {
	path     string
	exists   bool
	dev, ino uint64
	size     int64
	mtime    int64
}

// stampOf records what a file is now: a file replaced by rename has a new
// inode, one rewritten in place a new modification time or size.
func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{path: path}
	}
	s := fileStamp{path: path, exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	s.dev, s.ino = fileDevIno(fi)
	return s
}

// changed reports whether any of the stamped files is not as it was.
func changed(stamps []fileStamp) bool {
	for _, s := range stamps {
		if stampOf(s.path) != s {
			return true
		}
	}
	return false
}

// A tlsLoader reads files for one load and records what it read.
type tlsLoader struct {
	now      time.Time
	stamps   []fileStamp
	warnings []string // to be logged: a private key every user can read
}

func (l *tlsLoader) stamp(path string) {
	// Stamp before reading: a file changed in between is read new and
	// stamped old, so the next check loads it once more, which is harmless.
	l.stamps = append(l.stamps, stampOf(path))
}

func (l *tlsLoader) read(arg, path string) ([]byte, error) {
	l.stamp(path)
	b, fi, err := readPEMFile(path)
	if err != nil {
		return nil, &tlsFileError{Arg: arg, Path: path, Msg: "cannot be read", Err: err}
	}
	if err := guardFile(arg, path, fi, false); err != nil {
		return nil, err
	}
	return b, nil
}

// guardFile refuses the file or directory at path, read as read, if
// another user could change it (see pathguard.Check), or if what the path
// leads to now is not what was read.
func guardFile(arg, path string, read os.FileInfo, listing bool) error {
	checked, why := pathguard.Check(path, listing)
	if why == "" && checked != nil && read != nil && !os.SameFile(checked, read) {
		why = "it was replaced while it was read and checked"
	}
	if why == "" {
		return nil
	}
	msg := "can be changed by other users, so it is not used: "
	if listing {
		msg = "can be changed by other users (a .pem file added there is read), so it is not used: "
	}
	return &tlsFileError{Arg: arg, Path: path, Msg: msg + why}
}

// keyReadable adds a warning if every user can read the private key at
// path. It is not refused: a key in a container's image or a Kubernetes
// secret is often mode 0644 with no other user to read it.
func (l *tlsLoader) keyReadable(arg, path string) {
	if why := pathguard.ReadableByOthers(path); why != "" {
		l.warnings = append(l.warnings, arg+"= "+path+" holds a private key and "+why)
	}
}

// maxPEMFile bounds what is read of a key, certificate or parameters file:
// a bundle of every public CA is about 200 KiB.
const maxPEMFile = 4 << 20

// readPEMFile reads a regular file of at most maxPEMFile bytes. A string
// naming a FIFO, a device such as /dev/zero or a huge file fails at once
// instead of hanging the parse or filling memory.
func readPEMFile(path string) ([]byte, os.FileInfo, error) {
	// O_NONBLOCK: opening a FIFO with no writer would otherwise block.
	f, fi, err := openStat(path, os.O_RDONLY|syscall.O_NONBLOCK)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	if fi.Size() > maxPEMFile {
		return nil, nil, fmt.Errorf("%d bytes, more than a PEM file of keys and certificates needs (%d)", fi.Size(), maxPEMFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile))
	return b, fi, err
}

// pemFiles lists the files of dir ending in ".pem", sorted, as Twisted's
// caCertsDir and trustRoots do.
func (l *tlsLoader) pemFiles(arg, dir string) ([]string, error) {
	l.stamp(dir)
	ents, fi, err := readDir(dir)
	if err != nil {
		return nil, &tlsFileError{Arg: arg, Path: dir, Msg: "cannot be listed", Err: err}
	}
	if err := guardFile(arg, dir, fi, true); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.EqualFold(filepath.Ext(e.Name()), ".pem") && !e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// readDir lists a directory and says which directory it listed.
func readDir(dir string) ([]os.DirEntry, os.FileInfo, error) {
	f, fi, err := openStat(dir, os.O_RDONLY)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	return ents, fi, err
}

// openStat opens path and says what it opened.
func openStat(path string, flag int) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// hasPEM reports whether data holds a PEM block whose type ends with suffix.
func hasPEM(data []byte, suffix string) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, suffix) {
			return true
		}
	}
}

// parseCerts parses every CERTIFICATE block of data.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return certs, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
}

// validity checks that a certificate is valid now.
func validity(c *x509.Certificate, now time.Time) string {
	switch {
	case now.After(c.NotAfter):
		return fmt.Sprintf("holds a certificate (%s) that expired at %s", c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Sprintf("holds a certificate (%s) not valid until %s", c.Subject, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return ""
}

// keyPair reads a certificate chain and its private key. keyPath may equal
// certPath: one PEM file holding both, as Twisted allows.
func (l *tlsLoader) keyPair(certArg, certPath, keyArg, keyPath string) (*tls.Certificate, error) {
	certPEM, err := l.read(certArg, certPath)
	if err != nil {
		return nil, err
	}
	keyPEM := certPEM
	if keyPath != certPath {
		if keyPEM, err = l.read(keyArg, keyPath); err != nil {
			return nil, err
		}
	}
	l.keyReadable(keyArg, keyPath)
	return l.pair(certArg, certPath, certPEM, keyArg, keyPath, keyPEM)
}

func (l *tlsLoader) pair(certArg, certPath string, certPEM []byte, keyArg, keyPath string, keyPEM []byte) (*tls.Certificate, error) {
	certs, err := parseCerts(certPEM)
	if err != nil {
		return nil, &tlsFileError{Arg: certArg, Path: certPath, Msg: "holds a certificate that cannot be parsed", Err: err}
	}
	if len(certs) == 0 {
		return nil, &tlsFileError{Arg: certArg, Path: certPath, Msg: `has no PEM certificate (a "CERTIFICATE" block)`}
	}
	if !hasPEM(keyPEM, "PRIVATE KEY") {
		return nil, &tlsFileError{Arg: keyArg, Path: keyPath, Msg: `has no PEM private key (a "PRIVATE KEY" block)`}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &tlsFileError{Arg: keyArg, Path: keyPath,
			Msg: "cannot be used with the certificate in " + certPath, Err: err}
	}
	if msg := validity(certs[0], l.now); msg != "" {
		return nil, &tlsFileError{Arg: certArg, Path: certPath, Msg: msg}
	}
	return &pair, nil
}

// chain reads extra chain certificates (the ssl server's extraCertChain).
func (l *tlsLoader) chain(arg, path string) ([][]byte, error) {
	data, err := l.read(arg, path)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, &tlsFileError{Arg: arg, Path: path, Msg: "holds a certificate that cannot be parsed", Err: err}
	}
	if len(certs) == 0 {
		return nil, &tlsFileError{Arg: arg, Path: path, Msg: "has no PEM certificate to send as the chain"}
	}
	der := make([][]byte, len(certs))
	for i, c := range certs {
		der[i] = c.Raw
	}
	return der, nil
}

// certDir reads a directory of NAME.pem files, each a certificate chain
// with its key in the same file or in NAME.key. A .pem file without a
// certificate (a lone key) is skipped.
func (l *tlsLoader) certDir(arg, dir string) ([]tls.Certificate, error) {
	files, err := l.pemFiles(arg, dir)
	if err != nil {
		return nil, err
	}
	var out []tls.Certificate
	for _, f := range files {
		certPEM, err := l.read(arg, f)
		if err != nil {
			return nil, err
		}
		if !hasPEM(certPEM, "CERTIFICATE") {
			continue
		}
		keyPath, keyPEM := f, certPEM
		if !hasPEM(certPEM, "PRIVATE KEY") {
			keyPath = strings.TrimSuffix(f, filepath.Ext(f)) + ".key"
			if keyPEM, err = l.read(arg, keyPath); err != nil {
				if fe := err.(*tlsFileError); fe.Err != nil { // unreadable, not refused
					fe.Msg = "cannot be read, and " + filepath.Base(f) + " holds no private key"
				}
				return nil, err
			}
		}
		l.keyReadable(arg, keyPath)
		c, err := l.pair(arg, f, certPEM, arg, keyPath, keyPEM)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	if len(out) == 0 {
		return nil, &tlsFileError{Arg: arg, Path: dir, Msg: "has no .pem file holding a certificate"}
	}
	return out, nil
}

// certPool reads trusted certificates from a PEM file, or from the .pem
// files of a directory (Twisted's caCertsDir and trustRoots). Every
// certificate in a file is taken, not only the first as in Twisted.
func (l *tlsLoader) certPool(arg, path string) (*x509.CertPool, error) {
	files := []string{path}
	fi, err := os.Stat(path)
	if err != nil {
		l.stamp(path)
		return nil, &tlsFileError{Arg: arg, Path: path, Msg: "cannot be read", Err: err}
	}
	if fi.IsDir() {
		if files, err = l.pemFiles(arg, path); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	n := 0
	for _, f := range files {
		data, err := l.read(arg, f)
		if err != nil {
			return nil, err
		}
		certs, err := parseCerts(data)
		if err != nil {
			return nil, &tlsFileError{Arg: arg, Path: f, Msg: "holds a certificate that cannot be parsed", Err: err}
		}
		for _, c := range certs {
			pool.AddCert(c)
			n++
		}
	}
	if n == 0 {
		what := "has no PEM certificate"
		if fi.IsDir() {
			what = "has no .pem file holding a certificate"
		}
		return nil, &tlsFileError{Arg: arg, Path: path, Msg: what}
	}
	return pool, nil
}

// serverFiles says which files make a TLS server's configuration and how.
type serverFiles struct {
	certArg, certPath string // the certificate chain; certArg "" with certDir only
	keyArg, keyPath   string
	chainPath         string // extraCertChain (ssl)
	dirPath           string // certDir (tls)
	caPath            string // clientCA (tls)
	clientAuth        tls.ClientAuthType
	alpn              []string
	minVersion        uint16
	maxVersion        uint16
}

// tlsState is one loaded configuration.
type tlsState struct {
	config   *tls.Config
	warnings []string // logged when it is put in use
}

// load reads every file and builds the configuration, returning the
// stamps of what it read even when it fails, so that a broken file is
// tried again only once it changes.
func (f *serverFiles) load() (*tlsState, []fileStamp, error) {
	l := &tlsLoader{now: time.Now()}
	st, err := f.build(l)
	if st != nil {
		st.warnings = l.warnings
	}
	return st, l.stamps, err
}

func (f *serverFiles) build(l *tlsLoader) (*tlsState, error) {
	var certs []tls.Certificate
	if f.certArg != "" {
		c, err := l.keyPair(f.certArg, f.certPath, f.keyArg, f.keyPath)
		if err != nil {
			return nil, err
		}
		if f.chainPath != "" {
			der, err := l.chain("extraCertChain", f.chainPath)
			if err != nil {
				return nil, err
			}
			c.Certificate = append(c.Certificate, der...)
		}
		certs = append(certs, *c)
	}
	if f.dirPath != "" {
		more, err := l.certDir("certDir", f.dirPath)
		if err != nil {
			return nil, err
		}
		certs = append(certs, more...)
	}
	cfg := &tls.Config{
		// With several certificates crypto/tls picks the first that suits
		// the client's server name (SNI) and algorithms, else the first.
		Certificates: certs,
		NextProtos:   f.alpn,
		MinVersion:   f.minVersion,
		MaxVersion:   f.maxVersion,
	}
	if f.caPath != "" {
		pool, err := l.certPool("clientCA", f.caPath)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = f.clientAuth
	}
	return &tlsState{config: cfg}, nil
}

// reloadCheckInterval is how often, at most, a handshake looks at whether
// a TLS server's files changed.
const reloadCheckInterval = time.Second

// A certStore holds a TLS endpoint's current configuration, server's or
// client's, and replaces it when its files change. Handshakes call check,
// which costs an atomic load except once per interval, when it stats the
// files; it never blocks a handshake behind another one's reload.
type certStore struct {
	input, typ string      // for errors from Reload
	env        *driver.Env // its TLSConfig hook adjusts each configuration; its Logger hears of failed reloads
	// load reads the files and builds the configuration, returning the
	// stamps of what it read even when it fails.
	load  func() (*tlsState, []fileStamp, error)
	every time.Duration

	state atomic.Pointer[tlsState]
	next  atomic.Int64 // UnixNano before which check does nothing

	mu   sync.Mutex
	seen []fileStamp // of the last load, successful or not
}

// newCertStore loads the files once; an error is the parse-time error.
func newCertStore(a *driver.Args, load func() (*tlsState, []fileStamp, error)) (*certStore, error) {
	s := &certStore{input: a.Input, typ: a.Spec.Name, env: a.Env, load: load, every: reloadCheckInterval}
	st, stamps, err := load()
	if err != nil {
		return nil, err
	}
	s.use(st)
	s.seen = stamps
	s.next.Store(time.Now().Add(s.every).UnixNano())
	return s, nil
}

// check reloads the files if the interval has passed and they changed. A
// failed reload keeps the configuration in use and is logged (to the
// Env's Logger), since no caller is there to be told; it is tried again
// when the files change again.
func (s *certStore) check() {
	now := time.Now()
	if now.UnixNano() < s.next.Load() || !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	s.next.Store(now.Add(s.every).UnixNano())
	if changed(s.seen) {
		if err := s.loadLocked(); err != nil {
			s.env.Log().Warn("TLS files changed but do not load; keeping the certificates in use", "error", err)
		}
	}
}

// reload reads the files now, whether or not they changed.
func (s *certStore) reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadLocked()
}

func (s *certStore) loadLocked() error {
	st, stamps, err := s.load()
	s.seen = stamps
	if err != nil {
		var fe *tlsFileError
		e := &Error{Op: "reload", Input: s.input, Type: s.typ, Err: err}
		if errors.As(err, &fe) {
			e.Arg = fe.Arg
		}
		return e
	}
	s.use(st)
	return nil
}

// use puts a loaded configuration in use and logs its warnings.
func (s *certStore) use(st *tlsState) {
	for _, w := range st.warnings {
		s.env.Log().Warn(s.typ+": "+w, "type", s.typ)
	}
	s.env.AdjustTLS(st.config)
	s.state.Store(st)
}

// dhParamsCheck checks that path is a PEM file of Diffie-Hellman
// parameters. crypto/tls does no finite-field DHE, so they are not used.
func dhParamsCheck(path string) error {
	data, fi, err := readPEMFile(path)
	if err != nil {
		return &tlsFileError{Arg: "dhParameters", Path: path, Msg: "cannot be read", Err: err}
	}
	if err := guardFile("dhParameters", path, fi, false); err != nil {
		return err
	}
	if !hasPEM(data, "DH PARAMETERS") {
		return &tlsFileError{Arg: "dhParameters", Path: path, Msg: `has no PEM "DH PARAMETERS" block`}
	}
	return nil
}
