package endpoint

import "strings"

// redacted stands for a secret value wherever one would be shown.
const redacted = "xxxxx"

// secretKeys returns the names (and aliases) of every registered
// argument declared Secret. The map is never changed after it is read
// here: registration replaces it, under the lock, rather than adding to it.
func secretKeys() map[string]bool {
	registry.RLock()
	defer registry.RUnlock()
	return registry.secrets
}

// Redact returns s with the value of every secret argument (a proxy's
// password=, say) replaced by "xxxxx", also inside endpoint strings nested
// in s's values (tls's endpoint=, socks5's proxy=) and a wrapper's inner
// string: the form of s that may be logged, as url.URL.Redacted is for
// URLs. A string with no secret in it is returned as it is; one with a
// secret comes back in canonical form (Description.String). A string that
// does not parse is returned as it is.
func Redact(s string) string {
	keys := secretKeys()
	if len(keys) == 0 {
		return s
	}
	return redact(s, keys, 0)
}

// redactDepth bounds the nesting Redact looks into.
const redactDepth = 8

func redact(s string, keys map[string]bool, depth int) string {
	if depth > redactDepth || !strings.Contains(s, "=") {
		return s
	}
	d, err := Parse(s)
	if err != nil {
		return s
	}
	if isWrapper(d.Type) {
		// A wrapper's inner string is the rest of s after "TYPE:".
		if _, rest, err := parse(s, true); err == nil && rest < len(s) {
			return s[:rest] + redact(s[rest:], keys, depth+1)
		}
		return s
	}
	changed := false
	for i, kw := range d.Keywords {
		v := kw.Value
		if keys[kw.Key] {
			v = redacted
		} else {
			v = redact(v, keys, depth+1)
		}
		if v != kw.Value {
			d.Keywords[i].Value = v
			changed = true
		}
	}
	for i, p := range d.Positional {
		if r := redact(p, keys, depth+1); r != p {
			d.Positional[i] = r
			changed = true
		}
	}
	if !changed {
		return s
	}
	return d.String()
}

func isWrapper(typ string) bool {
	if t, _ := lookupServer(typ); t != nil && t.Wrapper {
		return true
	}
	t, _ := lookupClient(typ)
	return t != nil && t.Wrapper
}
