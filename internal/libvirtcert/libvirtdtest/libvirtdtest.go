// Package libvirtdtest starts a real libvirtd listening on TLS for a test and checks,
// as a libvirt client does, whether it accepts a client certificate. Only tests import it.
//
// The daemon runs with the built-in test driver only: as root, LIBVIRT_DRIVER_DIR points
// at an empty directory (the qemu driver would die on a missing libvirt-qemu user) and
// the unix sockets go to the test's directory; as another user it runs in session mode
// with its own XDG directories.
package libvirtdtest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Config is what a test daemon serves with.
type Config struct {
	Addr       string // listen address, 127.0.0.1 when empty
	ServerCert string // paths of the files the module wrote
	ServerKey  string
	CACert     string
	AllowedDNs []string // tls_allowed_dn_list
}

// Daemon is one running libvirtd.
type Daemon struct {
	Addr string
	Port int
	Dir  string
	cmd  *exec.Cmd
	log  string
}

// Binary returns libvirtd's path, or skips the test when it is not installed (the only
// reason a libvirtd test may skip).
func Binary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/libvirtd", "/usr/local/sbin/libvirtd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("libvirtd"); err == nil {
		return p
	}
	t.Skip("libvirtd is not installed (lab/deps.sh installs libvirt-daemon)")
	return ""
}

// ConfString quotes a value for libvirtd.conf, whose parser knows no escapes: double
// quotes, single quotes when the value holds a double quote, triple quotes when both.
func ConfString(s string) string {
	switch {
	case !strings.Contains(s, `"`):
		return `"` + s + `"`
	case !strings.Contains(s, `'`):
		return `'` + s + `'`
	}
	return `"""` + s + `"""`
}

// Start runs libvirtd on a free port with a config made for this test; it is stopped
// when the test ends.
func Start(t testing.TB, c Config) *Daemon {
	t.Helper()
	bin := Binary(t)
	if c.Addr == "" {
		c.Addr = "127.0.0.1"
	}
	dir, err := os.MkdirTemp("", "libvirtd-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &Daemon{Addr: c.Addr, Dir: dir, log: filepath.Join(dir, "libvirtd.log")}
	d.Port = freePort(t, c.Addr)
	var dns []string
	for _, dn := range c.AllowedDNs {
		dns = append(dns, ConfString(dn))
	}
	conf := fmt.Sprintf(`listen_tls = 1
listen_tcp = 0
listen_addr = %q
tls_port = "%d"
auth_tls = "none"
key_file = %s
cert_file = %s
ca_file = %s
tls_allowed_dn_list = [%s]
unix_sock_dir = %q
log_outputs = "3:stderr"
`, c.Addr, d.Port, ConfString(c.ServerKey), ConfString(c.ServerCert), ConfString(c.CACert), strings.Join(dns, ", "), filepath.Join(dir, "sock"))
	confPath := filepath.Join(dir, "libvirtd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"sock", "drivers", "home"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o755)
	}
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--listen", "-f", confPath, "--pid-file", filepath.Join(dir, "libvirtd.pid"))
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LIBVIRT_DRIVER_DIR=" + filepath.Join(dir, "drivers"),
		"HOME=" + filepath.Join(dir, "home"), "XDG_RUNTIME_DIR=" + filepath.Join(dir, "home"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "home", "config"), "XDG_CACHE_HOME=" + filepath.Join(dir, "home", "cache")}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting libvirtd: %v", err)
	}
	d.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", d.HostPort(), 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return d
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("libvirtd exited at start (%v):\n%s", err, d.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd does not listen on %s after 15 s:\n%s", d.HostPort(), d.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// HostPort is the daemon's TLS address.
func (d *Daemon) HostPort() string { return net.JoinHostPort(d.Addr, strconv.Itoa(d.Port)) }

// Log is what the daemon wrote so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

func freePort(t testing.TB, addr string) int {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ErrRefused is what Accepts returns when the daemon closed the connection instead of
// confirming the client.
var ErrRefused = errors.New("libvirtd refused the client")

// Accepts connects as a libvirt client does: a TLS handshake with the client's
// certificate, verifying the server against the CA and serverName, then the one byte
// libvirtd sends to a client it accepts (0x01); it closes the connection otherwise.
func Accepts(hostPort, serverName string, caPEM, certPEM, keyPEM []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no CA certificate")
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("client key pair: %v", err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", hostPort,
		&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, ServerName: serverName})
	if err != nil {
		return fmt.Errorf("%w: handshake: %v", ErrRefused, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 1)
	if _, err := conn.Read(b); err != nil {
		return fmt.Errorf("%w: no confirmation after the handshake (%v)", ErrRefused, err)
	}
	if b[0] != 1 {
		return fmt.Errorf("%w: confirmation byte %#x", ErrRefused, b[0])
	}
	return nil
}

// Virsh runs `virsh uri` against the daemon through the test driver with the client
// files in pkiDir (cacert.pem, clientcert.pem, clientkey.pem), as an operator would.
func Virsh(host string, port int, pkiDir string) (string, error) {
	uri := fmt.Sprintf("test+tls://%s/default?pkipath=%s", net.JoinHostPort(host, strconv.Itoa(port)), pkiDir)
	cmd := exec.Command("virsh", "-c", uri, "uri")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
