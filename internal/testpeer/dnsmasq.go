package testpeer

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DNSMasqBin is where Debian's dnsmasq package puts the program.
const DNSMasqBin = "/usr/sbin/dnsmasq"

// A DNSMasq is a dnsmasq serving the records of a test, on a loopback
// port, UDP and TCP, and nothing else: no upstream servers, no
// /etc/hosts, no DHCP.
type DNSMasq struct {
	// Addr is its address, 127.0.0.1:PORT.
	Addr string
	// Log is what it has logged: every query, one line each.
	Log *Buffer

	t    testing.TB
	port int
	cmd  *exec.Cmd
}

// StartDNSMasq runs dnsmasq with the records of records (dnsmasq.conf
// lines: srv-host=, host-record=, local-ttl=, ...) and waits until it
// answers. Every name under "test" is answered from the records alone
// (NXDOMAIN when it has none), never forwarded.
func StartDNSMasq(t testing.TB, records string) *DNSMasq {
	t.Helper()
	d := &DNSMasq{t: t, port: FreePort(t)}
	d.Addr = "127.0.0.1:" + strconv.Itoa(d.port)
	d.start(records)
	return d
}

// Restart stops dnsmasq and starts it again on the same port with other
// records: what a zone change looks like to a client (dnsmasq reads
// srv-host= lines only when it starts).
func (d *DNSMasq) Restart(records string) {
	d.t.Helper()
	d.cmd.Process.Kill()
	d.cmd.Wait()
	d.start(records)
}

// Stop stops dnsmasq: from then on nothing answers on Addr.
func (d *DNSMasq) Stop() {
	d.cmd.Process.Kill()
	d.cmd.Wait()
}

func (d *DNSMasq) start(records string) {
	d.t.Helper()
	conf := strings.Join([]string{
		"port=" + strconv.Itoa(d.port),
		"listen-address=127.0.0.1",
		"bind-interfaces",
		"no-resolv",
		"no-hosts",
		"no-negcache",
		"local=/test/",
		records,
	}, "\n") + "\n"
	path := filepath.Join(d.t.TempDir(), "dnsmasq.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		d.t.Fatal(err)
	}
	args := []string{"--keep-in-foreground", "--conf-file=" + path, "--pid-file=",
		"--log-queries", "--log-facility=-"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root") // its default, nobody, could not read the test's files
	}
	d.cmd = exec.Command(Need(d.t, DNSMasqBin, "dnsmasq"), args...)
	d.Log = Start(d.t, d.cmd)
	// dnsmasq listens on TCP as on UDP, and binds both before it answers
	// either: once TCP accepts, the server is up.
	d.Log.WaitFor(d.t, "started")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", d.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("dnsmasq does not listen on %s:\n%s", d.Addr, d.Log)
		}
	}
}
