package driver_test

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tether-endpoints/tether/endpoint"
	"github.com/tether-endpoints/tether/endpoint/driver"
)

func kw(pairs ...string) []driver.Keyword {
	var out []driver.Keyword
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, driver.Keyword{pairs[i], pairs[i+1]})
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want driver.Description
	}{
		{"tcp", driver.Description{Type: "tcp"}},
		{"tcp:80", driver.Description{Type: "tcp", Positional: []string{"80"}}},
		{"tcp:80:interface=127.0.0.1", driver.Description{Type: "tcp", Positional: []string{"80"}, Keywords: kw("interface", "127.0.0.1")}},
		// Twisted's own docstring example: _parse('a:b:d=1:c') == (['a','b','c'], {'d':'1'}).
		{"a:b:d=1:c", driver.Description{Type: "a", Positional: []string{"b", "c"}, Keywords: kw("d", "1")}},
		// Only the first '=' splits: the value keeps the rest.
		{"x:a=b=c", driver.Description{Type: "x", Keywords: kw("a", "b=c")}},
		{"x:a==", driver.Description{Type: "x", Keywords: kw("a", "=")}},
		{"x:a=", driver.Description{Type: "x", Keywords: kw("a", "")}},
		// Escapes: \: \= \\ and any other character.
		{`unix:C\:/x`, driver.Description{Type: "unix", Positional: []string{"C:/x"}}},
		{`x:a\=b`, driver.Description{Type: "x", Positional: []string{"a=b"}}},
		{`x:a\\b`, driver.Description{Type: "x", Positional: []string{`a\b`}}},
		{`x:\a`, driver.Description{Type: "x", Positional: []string{"a"}}},
		{`x:k\=ey=v`, driver.Description{Type: "x", Keywords: kw("k=ey", "v")}},
		{`x:k=v\:w`, driver.Description{Type: "x", Keywords: kw("k", "v:w")}},
		{`ssl:443:privateKey=C\:/key.pem:certKey=C\:/cert.pem`, driver.Description{Type: "ssl",
			Positional: []string{"443"}, Keywords: kw("privateKey", "C:/key.pem", "certKey", "C:/cert.pem")}},
		// Empty segments are empty positional arguments, as in Twisted.
		{"x::", driver.Description{Type: "x", Positional: []string{"", ""}}},
		{"x:", driver.Description{Type: "x", Positional: []string{""}}},
		// Brackets protect ':' and '=' and stay in the value.
		{"tcp:80:interface=[::1]", driver.Description{Type: "tcp", Positional: []string{"80"}, Keywords: kw("interface", "[::1]")}},
		{"tcp:host=[2001:db8::1]:port=443", driver.Description{Type: "tcp", Keywords: kw("host", "[2001:db8::1]", "port", "443")}},
		{"tcp:[::1]:80", driver.Description{Type: "tcp", Positional: []string{"[::1]", "80"}}},
		{"x:[a=b]", driver.Description{Type: "x", Positional: []string{"[a=b]"}}},
		{`x:[a\]b]`, driver.Description{Type: "x", Positional: []string{"[a]b]"}}},
		{"x:[a]b:c", driver.Description{Type: "x", Positional: []string{"[a]b", "c"}}},
		// A '[' that does not begin a value is an ordinary character.
		{"x:a[b:c]", driver.Description{Type: "x", Positional: []string{"a[b", "c]"}}},
		{`x:\[a:b`, driver.Description{Type: "x", Positional: []string{"[a", "b"}}},
		// Interleaving.
		{"tcp:port=80:127.0.0.1", driver.Description{Type: "tcp", Positional: []string{"127.0.0.1"}, Keywords: kw("port", "80")}},
		// The type keeps its case; lookup ignores it.
		{"TCP:80", driver.Description{Type: "TCP", Positional: []string{"80"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := driver.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("Parse(%q) = %#v, want %#v", tt.in, *got, tt.want)
			}
			again, err := driver.Parse(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip via %q: %#v, %v", got.String(), again, err)
			}
		})
	}
}

// manyKeys returns n keyword arguments k0=1:k1=1:...
func manyKeys(n int) string {
	kws := make([]string, n)
	for i := range kws {
		kws[i] = "k" + strconv.Itoa(i) + "=1"
	}
	return strings.Join(kws, ":")
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "type (the first segment) is empty"},
		{":80", "type (the first segment) is empty"},
		{"a=b:80", "type (the first segment) may not contain '='"},
		{`tcp:80\`, "lone backslash"},
		{`\`, "lone backslash"},
		{`tcp:[::1\`, "lone backslash"},
		{"tcp:80:interface=[::1", "never closed"},
		{"tcp:[", "never closed"},
		{"x:=v", "empty name"},
		{"tcp:port=80:port=81", `keyword "port" is given twice, at offsets 4 and 12`},
		// Past the first few keywords, a map finds the repeat.
		{"x:" + manyKeys(40) + ":k7=2", `keyword "k7" is given twice, at offsets 37 and 232`},
		{"x:" + strings.Repeat("a:", 30) + "=v", "keyword argument at offset 62 has an empty name (=v)"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := driver.Parse(tt.in)
			var e *endpoint.Error
			if !errors.As(err, &e) || !errors.Is(err, endpoint.ErrSyntax) {
				t.Fatalf("Parse(%q) = %v, want an *Error wrapping ErrSyntax", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.want) || e.Input != tt.in {
				t.Fatalf("Parse(%q) error %q, want it to contain %q and name the input", tt.in, err, tt.want)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	for _, s := range []string{"", "plain", "a:b", "a=b", `a\b`, "[::1]", "x[y", `\:=[]`, "C:/key.pem", "[a]b:c", `[a\b]=`, "[", "[]", "][",
		"[tcp:[::1]:80]", "[a[b]", "[a]b]", "[[x]]y", `[a\[b]`} {
		d := &driver.Description{Type: "x", Positional: []string{s}, Keywords: kw("k", s)}
		got, err := driver.Parse(d.String())
		if err != nil || !reflect.DeepEqual(got.Positional, []string{s}) || got.Keywords[0].Value != s {
			t.Errorf("Quote(%q) = %q does not survive: %#v, %v", s, endpoint.Quote(s), got, err)
		}
	}
	for in, want := range map[string]string{
		`a:b=c\d[`:       `a\:b\=c\\d[`,
		"[::1]":          "[::1]",
		"[a\\b]:c":       `[a\\b]\:c`,
		"[x":             `\[x`,
		"[tcp:[::1]:80]": "[tcp:[::1]:80]",
		"[a[b]":          `\[a[b]`,
		"plain":          "plain",
	} {
		if got := endpoint.Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParse checks that no input makes Parse panic or hang, and that a
// parsed string's canonical form parses back to the same Description.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"tcp:80", "tcp:80:interface=127.0.0.1", `unix:C\:/x:mode=660`, "tcp:host=[2001:db8::1]:port=443",
		"x:a=b=c", `x:[a\]b]`, "x::", `\`, "x:[", "a:b:d=1:c", "tcp:port=80:port=81", "TCP:0:backlog=0",
		`socks5:h:1:proxy=tcp\:p\:2:username=u:password=p`, `haproxy:socks5:h:1:password=x`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := driver.Parse(s)
		if err != nil {
			var e *endpoint.Error
			if !errors.As(err, &e) || !errors.Is(err, endpoint.ErrSyntax) {
				t.Fatalf("Parse(%q) error %v is not an *Error wrapping ErrSyntax", s, err)
			}
			return
		}
		canon := d.String()
		d2, err := driver.Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its canonical form %q fails: %v", s, canon, err)
		}
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("round trip of %q via %q: %#v != %#v", s, canon, d, d2)
		}
		if canon2 := d2.String(); canon2 != canon {
			t.Fatalf("canonical form not stable: %q then %q", canon, canon2)
		}
		// The typed layer and Redact must not panic either.
		driver.ServerArgs(s)
		driver.ClientArgs(s)
		if r := endpoint.Redact(s); r != s {
			if _, err := driver.Parse(r); err != nil {
				t.Fatalf("Redact(%q) = %q, which does not parse: %v", s, r, err)
			}
		}
	})
}

// nestTLS returns a client string nesting tcp:h:1 in n-1 tls clients, each
// taking the next as its endpoint=.
func nestTLS(n int) string {
	s := "tcp:h:1"
	for i := 1; i < n; i++ {
		s = "tls:h:1:endpoint=" + endpoint.Quote(s)
	}
	return s
}

// TestNestedBrackets: brackets nest, so that a value can hold a whole
// endpoint string with brackets of its own, written as it is.
func TestNestedBrackets(t *testing.T) {
	d, err := driver.Parse(`balance:[tcp:[::1]:80]:[tls:h:1:endpoint=[tcp:[::1]:2]]:policy=first`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"[tcp:[::1]:80]", "[tls:h:1:endpoint=[tcp:[::1]:2]]"}
	if !reflect.DeepEqual(d.Positional, want) {
		t.Errorf("positional %q, want %q", d.Positional, want)
	}
	// A nested endpoint string in brackets is read without them, by every
	// type that takes one.
	a, err := driver.ClientArgs("tls:h:1:endpoint=[tcp:[::1]:2]")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Value("endpoint").Str; got != "[tcp:[::1]:2]" {
		t.Errorf("endpoint = %q", got)
	}
	if _, err := endpoint.ParseClient("tls:h:1:endpoint=[tcp:[::1]:2]"); err != nil {
		t.Errorf("tls with a bracketed endpoint: %v", err)
	}
	if _, err := endpoint.ParseClient("tls:h:1:endpoint=[tcp:[::1]:x]"); err == nil || !strings.Contains(err.Error(), `port "x"`) {
		t.Errorf("a bad inner string must fail naming its argument, got %v", err)
	}
	for _, s := range []string{"[tcp:h:1]", "[[tcp:h:1]]x"} {
		if got, want := driver.Unbracket(s), map[bool]string{true: "tcp:h:1", false: s}[s == "[tcp:h:1]"]; got != want {
			t.Errorf("Unbracket(%q) = %q, want %q", s, got, want)
		}
	}
	// A secret inside brackets inside brackets is still hidden.
	secret := "balance:[socks5:h:1:proxy=[tcp:p:1]:username=u:password=hunter2]:[tcp:h:2]"
	if r := endpoint.Redact(secret); strings.Contains(r, "hunter2") {
		t.Errorf("Redact(%q) = %q", secret, r)
	}
	// Bracketed nesting counts toward MaxNesting like escaped nesting.
	deep := "tcp:h:1"
	for i := 0; i < endpoint.MaxNesting; i++ {
		deep = "tls:h:1:endpoint=[" + deep + "]"
	}
	if _, err := driver.ClientArgs(deep); !errors.Is(err, endpoint.ErrTooDeep) {
		t.Errorf("%d levels of brackets: %v, want ErrTooDeep", endpoint.MaxNesting+1, err)
	}
}

func TestNestingLimit(t *testing.T) {
	deepOK := []struct {
		name, s string
		client  bool
	}{
		{"wrappers", strings.Repeat("haproxy:", endpoint.MaxNesting-1) + "tcp:80", false},
		{"client wrappers", strings.Repeat("haproxy:", endpoint.MaxNesting-1) + "tcp:h:80", true},
		{"nested values", nestTLS(endpoint.MaxNesting), true},
		{"both", strings.Repeat("haproxy:", endpoint.MaxNesting/2) + nestTLS(endpoint.MaxNesting/2), true},
	}
	for _, tt := range deepOK {
		parse := driver.ServerArgs
		if tt.client {
			parse = driver.ClientArgs
		}
		if _, err := parse(tt.s); err != nil {
			t.Errorf("%s, %d deep: %v", tt.name, endpoint.MaxNesting, err)
		}
	}
	tooDeep := []struct {
		name, s string
	}{
		{"wrappers", strings.Repeat("haproxy:", endpoint.MaxNesting) + "tcp:80"},
		{"nested values", nestTLS(endpoint.MaxNesting + 1)},
		{"both", strings.Repeat("haproxy:", endpoint.MaxNesting/2) + nestTLS(endpoint.MaxNesting/2+1)},
		{"socks5 proxies", "socks5:h:1:proxy=" + endpoint.Quote(strings.Repeat("haproxy:", endpoint.MaxNesting-1)+"tcp:p:1")},
		{"nested values in wrappers", "haproxy:tls:h:1:endpoint=" + endpoint.Quote(strings.Repeat("haproxy:", endpoint.MaxNesting-1)+"tcp:h:1")},
	}
	for _, tt := range tooDeep {
		for _, parse := range []func(string) error{
			func(s string) error { _, err := driver.ServerArgs(s); return err },
			func(s string) error { _, err := driver.ClientArgs(s); return err },
			func(s string) error { _, err := endpoint.ParseServer(s); return err },
			func(s string) error { _, err := endpoint.ParseClient(s); return err },
		} {
			err := parse(tt.s)
			var e *endpoint.Error
			if !errors.Is(err, endpoint.ErrTooDeep) || !errors.As(err, &e) || e.Input != tt.s {
				t.Errorf("%s, %d deep: %v; want an *Error wrapping ErrTooDeep", tt.name, endpoint.MaxNesting+1, err)
				continue
			}
			if msg := err.Error(); !strings.Contains(msg, "nest more than 16 deep") {
				t.Errorf("%s: error %q does not say what the limit is", tt.name, msg)
			}
		}
	}
}

// TestNestingIsLinear parses strings nested far beyond the limit. Before
// the limit, a million bytes of haproxy: wrappers took hours and gigabytes
// (each level parsed again what is under it); now each is refused
// after MaxNesting levels, and shown shortened.
func TestNestingIsLinear(t *testing.T) {
	wrappers := strings.Repeat("haproxy:", 125_000) + "tcp:80"
	secret := strings.Repeat("haproxy:", 125_000) + `socks5:h:1:proxy=tcp\:p\:1:username=u:password=` + leakMark
	keys := strings.Repeat("x=", 500_000) + "password=" + leakMark
	for _, s := range []string{wrappers, secret} {
		for _, parse := range []func(string) error{
			func(s string) error { _, err := driver.ServerArgs(s); return err },
			func(s string) error { _, err := driver.ClientArgs(s); return err },
			func(s string) error { _, err := endpoint.ParseServer(s); return err },
			func(s string) error { _, err := endpoint.ParseClient(s); return err },
		} {
			err := parse(s)
			if !errors.Is(err, endpoint.ErrTooDeep) {
				t.Fatalf("%d bytes of wrappers: %.200v; want ErrTooDeep", len(s), err)
			}
			if msg := err.Error(); len(msg) > 2*driver.MaxShown || strings.Contains(msg, leakMark) || !strings.Contains(msg, "bytes in all") {
				t.Fatalf("error for %d bytes of wrappers is %d bytes long, or shows the secret: %.300s...", len(s), len(msg), msg)
			}
		}
	}
	for _, s := range []string{secret, keys} {
		if r := endpoint.Redact(s); strings.Contains(r, leakMark) || !strings.Contains(r, driver.Redacted) {
			t.Errorf("Redact of %d bytes shows the secret: ...%s", len(s), r[len(r)-100:])
		}
	}
	if _, err := driver.ClientArgs(keys); err == nil {
		t.Error("a million bytes of keys parse")
	}
}

// TestParseManyKeywords: looking for a repeated keyword is not quadratic
// (200,000 keywords took minutes).
func TestParseManyKeywords(t *testing.T) {
	s := "x:" + manyKeys(200_000)
	d, err := driver.Parse(s)
	if err != nil || len(d.Keywords) != 200_000 {
		t.Fatalf("Parse of 200,000 keywords: %v", err)
	}
	if _, err := driver.Parse(s + ":k199999=2"); !errors.Is(err, endpoint.ErrSyntax) || !strings.Contains(err.Error(), `"k199999" is given twice`) {
		t.Fatalf("Parse of 200,000 keywords and a repeat: %.300v", err)
	}
}
