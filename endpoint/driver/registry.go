package driver

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// ServerType is a server endpoint type as registered: its declaration and
// the function that makes a Server from bound arguments.
type ServerType struct {
	Spec
	// New makes the endpoint. It may check more than the Kinds do (files
	// exist, arguments agree) and report that with args.Errorf; it must not
	// listen yet.
	New func(args *Args) (Server, error)
}

// ClientType is a client endpoint type as registered.
type ClientType struct {
	Spec
	// New makes the endpoint. It must not dial yet.
	New func(args *Args) (Client, error)
}

var registry struct {
	sync.RWMutex
	servers map[string]*ServerType
	clients map[string]*ClientType
	// secrets holds the names and aliases of every Secret argument, in
	// lower case, kept as types register so that Redact and Error need
	// not scan the types.
	secrets []string
}

// noteSecrets records s's secret arguments; registry must be locked. It
// makes a new slice rather than change the old one, which secretNames'
// callers may be reading without the lock.
func noteSecrets(s *Spec) {
	secrets := registry.secrets
	for _, a := range s.Args {
		if !a.Secret {
			continue
		}
		for _, n := range append([]string{a.Name}, a.Aliases...) {
			n = strings.ToLower(n)
			if !slices.Contains(secrets, n) {
				// A full slice: append copies, and the old one stays as
				// its readers saw it.
				secrets = append(secrets[:len(secrets):len(secrets)], n)
			}
		}
	}
	registry.secrets = secrets
}

func checkSpec(kind string, s *Spec, hasNew bool) string {
	if !hasNew {
		panic("driver: Register" + kind + " of " + s.Name + " with nil New")
	}
	name := strings.ToLower(s.Name)
	if name == "" || name != s.Name || strings.ContainsAny(name, `:=\[`) {
		panic(fmt.Sprintf("driver: Register%s: type name %q must be non-empty lower case without ':', '=', '\\' or '['", kind, s.Name))
	}
	seen := map[string]bool{}
	for i, a := range s.Args {
		if a.Variadic {
			last := a.Positional
			for _, later := range s.Args[i+1:] {
				last = last && !later.Positional
			}
			if !last {
				panic(fmt.Sprintf("driver: Register%s %s: variadic argument %q must be the last positional one", kind, s.Name, a.Name))
			}
		}
		if a.DefaultFrom != "" {
			j := s.argIndex(a.DefaultFrom)
			if j < 0 || s.Args[j].Kind != a.Kind || a.Default != "" || a.Required || a.Variadic {
				panic(fmt.Sprintf("driver: Register%s %s: argument %q takes its default from %q, which must be "+
					"another argument of the same kind, and it must have no default of its own", kind, s.Name, a.Name, a.DefaultFrom))
			}
		}
		if a.Default != "" && !a.Variadic {
			// A default is written once, here; it must be a value the
			// argument accepts, or every string would fail.
			if want := readValue(&s.Args[i], &Value{Arg: &s.Args[i], Text: a.Default}); want != "" {
				panic(fmt.Sprintf("driver: Register%s %s: the default %q of argument %q is not %s", kind, s.Name, a.Default, a.Name, want))
			}
		}
		for _, n := range append([]string{a.Name}, a.Aliases...) {
			if n == "" || seen[n] {
				panic(fmt.Sprintf("driver: Register%s %s: argument name %q is empty or declared twice", kind, s.Name, n))
			}
			seen[n] = true
		}
	}
	return name
}

// RegisterServer makes a server endpoint type available to ParseServer.
// It is meant to be called from a package's init function, as the built-in
// types do. It panics if the type has no New function, a bad name, or a
// name already registered: two packages claiming one name is a bug that
// should not wait for the first string that uses it.
func RegisterServer(t ServerType) {
	name := checkSpec("Server", &t.Spec, t.New != nil)
	registry.Lock()
	defer registry.Unlock()
	if registry.servers == nil {
		registry.servers = map[string]*ServerType{}
	}
	if _, dup := registry.servers[name]; dup {
		panic("driver: RegisterServer called twice for type " + name)
	}
	registry.servers[name] = &t
	noteSecrets(&t.Spec)
}

// RegisterClient makes a client endpoint type available to ParseClient,
// with the same rules as RegisterServer.
func RegisterClient(t ClientType) {
	name := checkSpec("Client", &t.Spec, t.New != nil)
	registry.Lock()
	defer registry.Unlock()
	if registry.clients == nil {
		registry.clients = map[string]*ClientType{}
	}
	if _, dup := registry.clients[name]; dup {
		panic("driver: RegisterClient called twice for type " + name)
	}
	registry.clients[name] = &t
	noteSecrets(&t.Spec)
}

// ServerTypes returns the registered server types, sorted by name.
func ServerTypes() []ServerType {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]ServerType, 0, len(registry.servers))
	for _, t := range registry.servers {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ClientTypes returns the registered client types, sorted by name.
func ClientTypes() []ClientType {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]ClientType, 0, len(registry.clients))
	for _, t := range registry.clients {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func lookupServer(name string) (*ServerType, []string) {
	registry.RLock()
	defer registry.RUnlock()
	if t, ok := registry.servers[strings.ToLower(name)]; ok {
		return t, nil
	}
	return nil, sortedKeys(registry.servers)
}

func lookupClient(name string) (*ClientType, []string) {
	registry.RLock()
	defer registry.RUnlock()
	if t, ok := registry.clients[strings.ToLower(name)]; ok {
		return t, nil
	}
	return nil, sortedKeys(registry.clients)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func unknownType(input, role, name string, known []string) error {
	return &Error{Op: "parse", Input: input, Err: WrapError(ErrUnknownType, nil,
		fmt.Sprintf("unknown %s type %q (known: %s; a third-party type needs its package imported)",
			role, Redact(name), strings.Join(known, ", ")))}
}
