package sshca

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/testlab"
)

// ---------------------------------------------------------------- the module binary

func TestMain(m *testing.M) {
	code := m.Run()
	testlab.RemoveBuilt()
	os.Exit(code)
}

// runModule runs the built ssh_ca_trust binary as Ansible does.
func runModule(t *testing.T, args map[string]any) (map[string]any, string) {
	t.Helper()
	return testlab.RunModule(t, "ssh_ca_trust", args)
}

func msg(res map[string]any) string { s, _ := res["msg"].(string); return s }

// ---------------------------------------------------------------- OpenBao

type bao struct {
	addr, token string
}

func labVault(t *testing.T) *bao {
	t.Helper()
	l := testlab.Get(t)
	l.RequireVault(t)
	return &bao{addr: l.VaultAddr, token: l.VaultToken}
}

func (b *bao) call(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, b.addr+"/v1/"+path, rd)
	req.Header.Set("X-Vault-Token", b.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, data)
	}
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return out
}

// publicKey is the CA key as the unauthenticated endpoint serves it.
func (b *bao) publicKey(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(b.addr + "/v1/ssh-client-signer/public_key")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(data))
}

// sign has a public key signed by one of the seed's roles.
func (b *bao) sign(t *testing.T, role, pubKey, principals, ttl string) string {
	t.Helper()
	body := map[string]any{"public_key": pubKey, "cert_type": "user"}
	if principals != "" {
		body["valid_principals"] = principals
	}
	if ttl != "" {
		body["ttl"] = ttl
	}
	res := b.call(t, "POST", "ssh-client-signer/sign/"+role, body)
	return res["data"].(map[string]any)["signed_key"].(string)
}

// childToken creates a short-lived token with the given policies (never "root" itself:
// the lab's root token is the word root, which masking cannot tell from the user).
func (b *bao) childToken(t *testing.T, policies ...string) string {
	t.Helper()
	res := b.call(t, "POST", "auth/token/create", map[string]any{"policies": policies, "ttl": "15m"})
	return res["auth"].(map[string]any)["client_token"].(string)
}

// mount enables a secrets engine under a unique path, removed when the test ends.
func (b *bao) mount(t *testing.T, typ string) string {
	t.Helper()
	path := fmt.Sprintf("sshca-test-%s-%d", typ, time.Now().UnixNano())
	b.call(t, "POST", "sys/mounts/"+path, map[string]any{"type": typ})
	t.Cleanup(func() { b.call(t, "DELETE", "sys/mounts/"+path, nil) })
	return path
}

// ---------------------------------------------------------------- a real sshd

// testSSHD is an sshd of the test's own on a free 127.0.0.1 port, with a Debian-like
// main file that includes a drop-in directory, its own host key, pid file and log.
type testSSHD struct {
	Dir, Config, DropIns, PIDFile, Log, KeysFile, PrincipalsDir string
	Port                                                        int
}

func startSSHD(t *testing.T) *testSSHD {
	t.Helper()
	l := testlab.Get(t)
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
	s := &testSSHD{Dir: dir, Config: filepath.Join(dir, "sshd_config"), DropIns: filepath.Join(dir, "sshd_config.d"),
		PIDFile: filepath.Join(dir, "sshd.pid"), Log: filepath.Join(dir, "sshd.log"),
		KeysFile: filepath.Join(dir, "trusted-user-ca-keys.pem"), PrincipalsDir: filepath.Join(dir, "auth_principals")}
	s.Port = freePort(t)
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
		if pid := s.pid(); pid > 0 {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("sshd directory kept: %s", dir)
		}
	})
	s.waitListening(t)
	return s
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *testSSHD) pid() int {
	data, _ := os.ReadFile(s.PIDFile)
	var pid int
	fmt.Sscan(string(data), &pid)
	return pid
}

func (s *testSSHD) waitListening(t *testing.T) {
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
func (s *testSSHD) Reloads() int {
	log, _ := os.ReadFile(s.Log)
	return strings.Count(string(log), "Received SIGHUP")
}

// args are the module options that point it at this sshd.
func (s *testSSHD) args(extra map[string]any) map[string]any {
	a := map[string]any{"sshd_config": s.Config, "keys_file": s.KeysFile, "principals_dir": s.PrincipalsDir,
		"pid_file": s.PIDFile, "principals": map[string]any{"root": []any{"root"}, "rocky": []any{"rocky"}}}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// Snapshot is every file under the sshd directory but the log and pid: what the module may change.
func (s *testSSHD) Snapshot(t *testing.T) string {
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

// ---------------------------------------------------------------- ssh clients

type userKey struct{ Path, Pub string }

func newUserKey(t *testing.T) userKey {
	t.Helper()
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sshca-test", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	pub, _ := os.ReadFile(path + ".pub")
	return userKey{Path: path, Pub: strings.TrimSpace(string(pub))}
}

// withCert writes cert beside a copy of the key and returns the copy's path.
func (k userKey) withCert(t *testing.T, cert string) string {
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
func (s *testSSHD) login(t *testing.T, user, keyPath string) (string, error) {
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

func (s *testSSHD) mustLogin(t *testing.T, user, keyPath, why string) {
	t.Helper()
	got, err := s.login(t, user, keyPath)
	if err != nil || got != user {
		log, _ := os.ReadFile(s.Log)
		t.Fatalf("%s: login as %s failed: %v (%q)\nsshd log:\n%s", why, user, err, got, tail(string(log), 15))
	}
}

func (s *testSSHD) mustBeRefused(t *testing.T, user, keyPath, why string) {
	t.Helper()
	got, err := s.login(t, user, keyPath)
	if err == nil {
		t.Fatalf("%s: login as %s succeeded (%q), it must be refused", why, user, got)
	}
	if !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("%s: login as %s failed for another reason than authentication: %v", why, user, err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
