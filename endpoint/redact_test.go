package endpoint

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	socks := `socks5:db:5432:proxy=tcp\:p\:1080:username=u:password=hunter2`
	nested := "tls:db:443:endpoint=" + Quote("socks5:db:443:proxy="+Quote("tcp:p:1080")+":username=u:password=hunter2")
	for _, s := range []string{
		socks,
		"SOCKS5:db:5432:password=hunter2:proxy=tcp\\:p\\:1080:username=u",
		nested,
		"haproxy:" + socks,
		"httpconnect:db:5432:proxy=tcp\\:p\\:3128:username=u:password=hunter2",
	} {
		r := Redact(s)
		if strings.Contains(r, "hunter2") || !strings.Contains(r, redacted) {
			t.Errorf("Redact(%q) = %q", s, r)
		}
		if _, err := ClientArgs(r); err != nil {
			t.Errorf("Redact(%q) = %q does not parse: %v", s, r, err)
		}
	}
	// Strings without secrets come back exactly as written.
	for _, s := range []string{"tcp:80:interface=[::1]", `unix:C\:/x:mode=660`, "tcp:host=h:80", `tcp:80\`, "haproxy:tcp:80"} {
		if r := Redact(s); r != s {
			t.Errorf("Redact(%q) = %q, want it unchanged", s, r)
		}
	}
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	for _, s := range []string{
		`socks5:db:http:proxy=tcp\:p\:1080:username=u:password=hunter2`, // a bad port
		`socks5:db:1:proxy=tcp\:p\:1080:password=hunter2`,               // password without username
		`socks5:db:1:proxy=tcp\:p\:1080:username=u:password=` + strings.Repeat("hunter2", 40),
		"tls:db:443:endpoint=" + Quote("socks5:db:x:proxy=tcp\\:p\\:1:username=u:password=hunter2"),
	} {
		_, err := ParseClient(s)
		if err == nil {
			t.Errorf("ParseClient(%q): no error", s)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	a, err := ClientArgs(`socks5:db:1:proxy=tcp\:p\:1080:username=u:password=hunter2`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(a)
	if strings.Contains(string(b), "hunter2") || !strings.Contains(string(b), `"password":"xxxxx"`) {
		t.Errorf("describe JSON shows the password: %s", b)
	}
	if a.String("password") != "hunter2" {
		t.Errorf("the type itself must still get the password, got %q", a.String("password"))
	}
}
