package testlab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SSHD is an sshd of the test's own on a free 127.0.0.1 port, with a Debian-like
// main file that includes a drop-in directory, its own host key, pid file and log.
type SSHD struct {
	Dir, Config, DropIns, PIDFile, Log, KeysFile, PrincipalsDir string
	Port                                                        int
}

// StartSSHD starts one under $LAB_STATE/sshca-tests/ (stopped when the test ends; its
// directory is kept for a failed test, and named in the log).
func StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	l := Get(t)
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("/usr/sbin/sshd is not installed")
	}
	// Not under /tmp: sshd (StrictModes) refuses principals files below a world-writable
	// directory, and reads them as the user, so every directory must be 0755 root.
	base := filepath.Join(l.State, "sshca-tests")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(base, "sshd-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	s := &SSHD{Dir: dir, Config: filepath.Join(dir, "sshd_config"), DropIns: filepath.Join(dir, "sshd_config.d"),
		PIDFile: filepath.Join(dir, "sshd.pid"), Log: filepath.Join(dir, "sshd.log"),
		KeysFile: filepath.Join(dir, "trusted-user-ca-keys.pem"), PrincipalsDir: filepath.Join(dir, "auth_principals")}
	s.Port = FreePort(t)
	os.MkdirAll(s.DropIns, 0o755)
	os.MkdirAll("/run/sshd", 0o755)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_ed25519")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	conf := fmt.Sprintf(`# test sshd (Debian-like: drop-ins first)
Include %s/*.conf
ListenAddress 127.0.0.1:%d
HostKey %s/host_ed25519
PidFile %s
AuthorizedKeysFile none
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
# UsePAM: the lab creates rocky with a locked password ("!"), which sshd refuses without PAM
UsePAM yes
LogLevel VERBOSE
`, s.DropIns, s.Port, dir, s.PIDFile)
	if err := os.WriteFile(s.Config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("/usr/sbin/sshd", "-f", s.Config, "-E", s.Log).CombinedOutput(); err != nil {
		t.Fatalf("sshd: %v %s", err, out)
	}
	t.Cleanup(func() {
		if pid := s.PID(); pid > 0 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("sshd directory kept: %s", dir)
		}
	})
	s.WaitListening(t)
	return s
}

// FreePort is a 127.0.0.1 TCP port nobody listens on now.
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// PID is the running sshd's process id (0 when its pid file is gone).
func (s *SSHD) PID() int {
	data, _ := os.ReadFile(s.PIDFile)
	var pid int
	fmt.Sscan(string(data), &pid)
	return pid
}

// WaitListening waits until sshd accepts connections again (after a start or a reload).
func (s *SSHD) WaitListening(t testing.TB) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(s.Log)
	t.Fatalf("sshd does not listen on %d: %s", s.Port, log)
}

// Reloads counts the SIGHUPs sshd logged.
func (s *SSHD) Reloads() int {
	log, _ := os.ReadFile(s.Log)
	return strings.Count(string(log), "Received SIGHUP")
}

// Snapshot is every file under the sshd directory but the log and pid: what the module may change.
func (s *SSHD) Snapshot(t testing.TB) string {
	t.Helper()
	var lines []string
	filepath.Walk(s.Dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || path == s.Log || path == s.PIDFile {
			return nil
		}
		data := []byte{}
		if !fi.IsDir() {
			data, _ = os.ReadFile(path)
		}
		lines = append(lines, fmt.Sprintf("%s %v %q", path, fi.Mode(), data))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// UserKey is an ed25519 key pair of a test user.
type UserKey struct{ Path, Pub string }

// NewUserKey makes a key pair under the test's temp dir.
func NewUserKey(t testing.TB) UserKey {
	t.Helper()
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sshca-test", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(path + ".pub")
	return UserKey{Path: path, Pub: strings.TrimSpace(string(pub))}
}

// WithCert writes cert beside a copy of the key and returns the copy's path.
func (k UserKey) WithCert(t testing.TB, cert string) string {
	t.Helper()
	dir := t.TempDir()
	key, _ := os.ReadFile(k.Path)
	p := filepath.Join(dir, "id")
	os.WriteFile(p, key, 0o600)
	if cert != "" {
		os.WriteFile(p+"-cert.pub", []byte(cert), 0o644)
	}
	return p
}

// login runs `id -un` over ssh as user with the key (and its -cert.pub, if any); it
// returns the remote user name, or the error output.
func (s *SSHD) Login(t testing.TB, user, keyPath string) (string, error) {
	t.Helper()
	args := []string{"-F", "/dev/null", "-i", keyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
		"-o", "LogLevel=ERROR", "-p", fmt.Sprint(s.Port)}
	if _, err := os.Stat(keyPath + "-cert.pub"); err == nil {
		args = append(args, "-o", "CertificateFile="+keyPath+"-cert.pub")
	}
	args = append(args, user+"@127.0.0.1", "id", "-un")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// MustLogin fails the test, with the tail of sshd's log, unless user logs in with keyPath.
func (s *SSHD) MustLogin(t testing.TB, user, keyPath, why string) {
	t.Helper()
	got, err := s.Login(t, user, keyPath)
	if err != nil || got != user {
		log, _ := os.ReadFile(s.Log)
		t.Fatalf("%s: login as %s failed: %v (%q)\nsshd log:\n%s", why, user, err, got, Tail(string(log), 15))
	}
}

// MustBeRefused fails the test unless sshd refuses the login for authentication.
func (s *SSHD) MustBeRefused(t testing.TB, user, keyPath, why string) {
	t.Helper()
	got, err := s.Login(t, user, keyPath)
	if err == nil {
		t.Fatalf("%s: login as %s succeeded (%q), it must be refused", why, user, got)
	}
	if !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("%s: login as %s failed for another reason than authentication: %v", why, user, err)
	}
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
