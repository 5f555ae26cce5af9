package driver

import (
	"slices"
	"strings"
)

// redacted stands for a secret value wherever one would be shown.
const redacted = "xxxxx"

// redactDepth bounds how many strings nested one in another Redact takes
// apart. It is more than MaxNesting, as Redact also looks into values that
// are not endpoint strings; what lies deeper is hidden from the first
// secret-looking key to its end (see cutSpans), so that no depth is left
// unredacted.
const redactDepth = 2 * MaxNesting

// redactBudget is how many strings, nested in one another, one Redact
// reads at most (see redactor.budget).
const redactBudget = 4096

// secretNames returns the names (and aliases) of every registered argument
// declared Secret, in lower case. The slice is never changed after it is
// read here: registration replaces it, under the lock, rather than add to
// it.
func secretNames() []string {
	registry.RLock()
	defer registry.RUnlock()
	return registry.secrets
}

// Redact returns s with the value of every secret argument (a proxy's
// password=, say) replaced by "xxxxx": the form of s that may be logged, as
// url.URL.Redacted is for URLs. Everything else is kept as written, so a
// string with no secret in it comes back as it is, and one that parses
// (with Parse) still parses.
//
// Redact looks at every depth: into the values of s (the endpoint strings
// that tls's endpoint= or socks5's proxy= take, with their escaped
// backslashes), a wrapper's inner string, and strings that do not parse
// (a trailing backslash, an unclosed '['), which it reads as well as it
// can. Where the string is unclear it hides more rather than less: a key
// that ends in a secret argument's name, in any case and with any escapes
// (xpassword=, PASSWORD=, pass\word=), has its value hidden too, and so
// does one in a value that is not an endpoint string, or in a bracket;
// and the positional pieces that follow a secret's value, up to the next
// keyword, are hidden with it, as the rest of a password whose ':' was
// not escaped (password=abc:def shows as password=xxxxx). Nested more than 32 levels deep (twice MaxNesting), everything after
// the first such key is hidden.
func Redact(s string) string {
	names := secretNames()
	if len(names) == 0 || strings.IndexByte(s, '=') < 0 {
		return s
	}
	r := redactor{names: names, budget: redactBudget}
	return hideSpans(s, r.spans(s, 0))
}

// A span is a range of bytes of a string, [lo, hi), to hide.
type span struct{ lo, hi int }

// hideSpans returns s with each span, given in order and not overlapping,
// replaced by "xxxxx".
func hideSpans(s string, spans []span) string {
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	at := 0
	for _, sp := range spans {
		b.WriteString(s[at:sp.lo])
		b.WriteString(redacted)
		at = sp.hi
	}
	b.WriteString(s[at:])
	return b.String()
}

// redactor finds what Redact hides.
type redactor struct {
	names []string // secretNames
	// budget bounds the strings spans reads, in all: a bracket read two
	// ways (see inside) at every level of a string built so would
	// otherwise double the work at each. Past it, a string is hidden
	// from its first secret-looking key on (cutSpans).
	budget int
}

// A piece is a part of an endpoint string that may hold a nested one: a
// keyword's key or value, or a positional argument (the type included).
type piece struct {
	lo, hi int // its bytes in the string, escapes included
	// bracket is the index of the ']' that closes the bracket the piece
	// begins with, or -1: those brackets are part of the structure of the
	// string the piece is in, and must stay as they are.
	bracket int
}

// spans returns the byte ranges of s that hold secrets, in order. It
// reads s as Parse does, but never fails: a lone backslash at the end is
// left out, an unclosed '[' is an ordinary character, the first segment
// may be a keyword, and keys may repeat. Each piece holding an '=' is read
// in turn as an endpoint string, one level down.
func (r *redactor) spans(s string, depth int) []span {
	if depth > redactDepth {
		return r.cutSpans(s)
	}
	if r.budget--; r.budget < 0 {
		return r.cutSpans(s)
	}
	if inner, ok := bracketed(s); ok {
		// A string that is all one bracket is read without it, as
		// Unbracket does before a nested string is parsed, and by
		// Unbracket's rule, which counts an escaped bracket as a bracket
		// where Parse does not: that reading is the one that binds.
		found := offsetSpans(r.spans(inner, depth+1), 1)
		if len(found) == 0 || sameBrackets(s, hideSpans(s, found)) {
			return found
		}
		// Hiding those would move the brackets, by one rule or the other:
		// hide all that is between them, or else all of s.
		if whole := []span{{1, len(s) - 1}}; sameBrackets(s, hideSpans(s, whole)) {
			return whole
		}
		return []span{{0, len(s)}}
	}
	return r.scan(s, depth)
}

// scan is spans' reading of s segment by segment, as Parse reads it.
func (r *redactor) scan(s string, depth int) []span {
	var (
		out      []span
		segLo    int // where the segment begins
		key      piece
		isKw     bool
		cur      = piece{bracket: -1}
		segStart = true // at the start of a value: a '[' here may open a bracket
		end      = len(s)
		// afterSecret is set while the segments since a secret's value
		// have all been positional: a ':' in a password that the user
		// did not escape (password=abc:def) splits the secret there, and
		// what follows must not be shown as an argument of its own.
		afterSecret bool
	)
	finish := func(hi int) {
		cur.hi = hi
		switch {
		case !isKw && afterSecret:
			out[len(out)-1].hi = hi
		case !isKw:
			out = append(out, r.inside(s, cur, depth)...)
		case len(r.inside(s, key, depth)) > 0:
			// A secret in a key: hide the whole key=value segment, as a
			// part of a key could make two keys the same.
			out = append(out, span{segLo, hi})
		case r.isSecret(s[key.lo:key.hi]):
			out = append(out, span{cur.lo, cur.hi})
			afterSecret = true
			return
		default:
			out = append(out, r.inside(s, cur, depth)...)
		}
		afterSecret = afterSecret && !isKw
	}
scan:
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			if i+1 == len(s) {
				end = i // a lone backslash at the end belongs to nothing
				break scan
			}
			i++
			segStart = false
		case c == '[' && segStart:
			segStart = false
			if j := closingBracket(s, i); j > 0 {
				cur.bracket = j
				i = j
			}
		case c == ':':
			finish(i)
			segLo, isKw, cur, segStart = i+1, false, piece{lo: i + 1, bracket: -1}, true
		case c == '=' && !isKw:
			cur.hi = i
			key, isKw = cur, true
			cur, segStart = piece{lo: i + 1, bracket: -1}, true
		default:
			segStart = false
		}
	}
	finish(end)
	return out
}

// closingBracket returns the index of the ']' closing the '[' at s[i], as
// Parse finds it, or -1 when there is none.
func closingBracket(s string, i int) int {
	depth := 1
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

// inside returns the spans to hide within the piece p of s, found by
// reading the piece's text as an endpoint string of its own.
func (r *redactor) inside(s string, p piece, depth int) []span {
	raw := s[p.lo:p.hi]
	if strings.IndexByte(raw, '=') < 0 {
		return nil // no key, so no secret, at any depth
	}
	if p.lo > 0 || p.hi < len(s) {
		// A part of s: its value, unescaped as Parse gives it, is read
		// one level down.
		text := unescape(raw)
		found := mapSpans(raw, p.lo, r.spans(text, depth+1))
		if p.bracket >= 0 && len(found) > 0 {
			for _, sp := range found {
				if sp.lo == p.lo && sp.hi > sp.lo || sp.lo <= p.bracket && p.bracket < sp.hi {
					// Hiding a bracket of this level would change what
					// the rest of s means: hide the whole piece instead.
					return []span{{p.lo, p.hi}}
				}
			}
		}
		return wholeIfUnbalanced(s, p, found)
	}
	// The piece is all of s: one segment whose ':' and '=' are all in a
	// bracket (by Parse's rule, not Unbracket's: see spans). Read what the
	// bracket holds. Anything after its ']' is hidden with a secret found
	// in it, as the rest of a value cut at a ']' it held
	// (password=x]rest).
	if p.bracket < 0 {
		// Read once more unescaped, generously: a key escaped a level
		// too deep (password\=x) is still hidden.
		if text := unescape(raw); len(text) < len(raw) {
			return mapSpans(raw, p.lo, r.spans(text, depth+1))
		}
		return nil
	}
	inner := s[p.lo+1 : p.bracket]
	found := offsetSpans(r.spans(inner, depth+1), p.lo+1)
	if text := unescape(raw); len(text) < len(raw) {
		// And, generously, the whole piece read once more unescaped.
		found = unionSpans(found, mapSpans(raw, p.lo, r.spans(text, depth+1)))
	}
	found = wholeIfUnbalanced(s, p, found)
	if len(found) > 0 && p.bracket+1 < p.hi {
		return []span{{p.lo, p.hi}}
	}
	return found
}

// unionSpans merges two ordered lists of spans into one, ordered and
// without overlaps, that hides what either hides.
func unionSpans(a, b []span) []span {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	all := append(append(make([]span, 0, len(a)+len(b)), a...), b...)
	slices.SortFunc(all, func(x, y span) int { return x.lo - y.lo })
	out := all[:1]
	for _, sp := range all[1:] {
		if last := &out[len(out)-1]; sp.lo <= last.hi {
			last.hi = max(last.hi, sp.hi)
		} else {
			out = append(out, sp)
		}
	}
	return out
}

// bracketed returns what is between the brackets of s if all of s is one
// bracketed part, as Unbracket finds it.
func bracketed(s string) (string, bool) {
	if len(s) >= 2 && s[0] == '[' && matchingBracket(s) == len(s)-1 {
		return s[1 : len(s)-1], true
	}
	return "", false
}

// sameBrackets reports whether red, a redacted form of s, which is all
// one bracket by Unbracket's rule, is so too, and reads as s does by
// Parse's rule: its first bracket closing at its end, elsewhere, or
// never, as that of s does.
func sameBrackets(s, red string) bool {
	where := func(x string) int {
		switch j := closingBracket(x, 0); {
		case j < 0:
			return -1
		case j == len(x)-1:
			return 1
		}
		return 0
	}
	return matchingBracket(red) == len(red)-1 && where(red) == where(s)
}

// offsetSpans moves spans of a part of a string that begins at off to the
// string's own offsets.
func offsetSpans(spans []span, off int) []span {
	for i := range spans {
		spans[i].lo += off
		spans[i].hi += off
	}
	return spans
}

// wholeIfUnbalanced returns found, the spans to hide within the piece p of
// s, unless one of them holds a '[' or ']' without its partner (a value
// password=a]b, read one level down, where ']' is an ordinary character):
// hiding it would change which brackets match at the levels above, so that
// the redacted string no longer parses, or parses otherwise. Then the
// whole piece is hidden instead; should the piece itself be unbalanced,
// the level above hides more in turn.
func wholeIfUnbalanced(s string, p piece, found []span) []span {
	for _, sp := range found {
		if !bracketsBalanced(s[sp.lo:sp.hi]) {
			return []span{{p.lo, p.hi}}
		}
	}
	return found
}

// bracketsBalanced reports whether every unescaped '[' in s is closed by
// a later ']' in s, and every ']' closes one.
func bracketsBalanced(s string) bool {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '[':
			depth++
		case ']':
			if depth--; depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}

// unescape returns the text of a piece: every backslash makes the next
// byte literal.
func unescape(raw string) string {
	if strings.IndexByte(raw, '\\') < 0 {
		return raw
	}
	b := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == '\\' && i+1 < len(raw) {
			i++
		}
		b = append(b, raw[i])
	}
	return string(b)
}

// mapSpans turns spans of unescape(raw) into spans of the string raw is
// found in, at offset base. A span takes the escapes of the characters in
// it along, so that what is left is whole characters.
func mapSpans(raw string, base int, spans []span) []span {
	if len(spans) == 0 {
		return nil
	}
	out := make([]span, 0, len(spans))
	n, pos := 0, 0 // n characters of the text take raw[:pos]
	advance := func(to int) int {
		for ; n < to; n++ {
			if raw[pos] == '\\' && pos+1 < len(raw) {
				pos++
			}
			pos++
		}
		return base + pos
	}
	for _, sp := range spans {
		lo := advance(sp.lo)
		out = append(out, span{lo, advance(sp.hi)})
	}
	return out
}

// isSecret reports whether key names a secret argument, reading it
// generously: a key that ends in a secret name, in any case, with any
// backslashes in it and any spaces or ']' after it.
func (r *redactor) isSecret(key string) bool {
	for _, name := range r.names {
		if endsWithName(key, name) {
			return true
		}
	}
	return false
}

// isSecretArg reports whether an argument so named is secret, as
// redaction reads keys.
func isSecretArg(name string) bool {
	r := redactor{names: secretNames()}
	return r.isSecret(name)
}

func endsWithName(key, name string) bool {
	i := len(key) - 1
	for i >= 0 && (key[i] == ' ' || key[i] == '\t' || key[i] == ']' || key[i] == '\\') {
		i--
	}
	for j := len(name) - 1; j >= 0; j-- {
		for i >= 0 && key[i] == '\\' {
			i--
		}
		if i < 0 || lower(key[i]) != name[j] {
			return false
		}
		i--
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// assignment returns the index just after the '=' of the first secret
// name followed by '=' in s at or after from, or -1. As isSecret, it
// allows backslashes in the name (escaping at any depth puts them before
// the '=') and spaces and ']' after it. It does not look at the structure
// of s at all.
func (r *redactor) assignment(s string, from int) int {
	for i := from; i < len(s); i++ {
		for _, name := range r.names {
			if lower(s[i]) != name[0] {
				continue
			}
			k := i + 1
			for j := 1; j < len(name) && k >= 0; j++ {
				for k < len(s) && s[k] == '\\' {
					k++
				}
				if k < len(s) && lower(s[k]) == name[j] {
					k++
				} else {
					k = -1
				}
			}
			if k < 0 {
				continue
			}
			for k < len(s) && strings.IndexByte(" \t]\\", s[k]) >= 0 {
				k++
			}
			if k < len(s) && s[k] == '=' {
				return k + 1
			}
		}
	}
	return -1
}

// cutSpans hides all of s after the first secret name followed by '=':
// what Redact does too deep in a string to take it apart.
func (r *redactor) cutSpans(s string) []span {
	if at := r.assignment(s, 0); at >= 0 {
		return []span{{at, len(s)}}
	}
	return nil
}

// scrub hides, in a message made for people, the value after every secret
// name followed by '=' that is not "xxxxx" already: up to the next space,
// quote, ':' or ','. It is the last guard of Error, for text that did
// not come through Redact (an operating system error quoting a path, say).
func scrub(msg string) string {
	r := redactor{names: secretNames()}
	if len(r.names) == 0 {
		return msg
	}
	var spans []span
	for at := r.assignment(msg, 0); at >= 0; at = r.assignment(msg, at) {
		if strings.HasPrefix(msg[at:], redacted) && (at+len(redacted) == len(msg) || !isWordByte(msg[at+len(redacted)])) {
			continue
		}
		end := at
		for end < len(msg) && !strings.ContainsRune(" \t\r\n\"':,", rune(msg[end])) {
			end++
		}
		switch last := len(spans) - 1; {
		case end == at:
		case last >= 0 && at <= spans[last].hi:
			// A secret name in what is hidden already: hide on to the
			// end of its value too.
			spans[last].hi = max(spans[last].hi, end)
		default:
			spans = append(spans, span{at, end})
		}
	}
	return hideSpans(msg, spans)
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}
