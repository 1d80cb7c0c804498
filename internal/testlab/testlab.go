// Package testlab gives tests the addresses of the local lab (lab/lab.sh). Tests that
// need it call Get: under `make test` (LAB_REQUIRED=1) a missing lab fails the test;
// in a plain `go test` it skips with the reason.
package testlab

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Lab holds what lab/lab.sh env exports.
type Lab struct {
	State          string
	Host1Socket    string
	Host2Socket    string
	Host1Addr      string
	Host2Addr      string
	IncusHTTPSPort string
	SSHPort        string
	SSHKey         string
	GatewayPort    string
	VaultAddr      string
	VaultToken     string
	LibvirtTLSPort string
	RepoRoot       string
}

// RepoRoot is the repository's top directory (where go.mod is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Get returns the lab, or fails/skips the test when it is not up.
func Get(t testing.TB) *Lab {
	t.Helper()
	l := &Lab{
		State:          os.Getenv("LAB_STATE"),
		Host1Socket:    os.Getenv("LAB_HOST1_SOCKET"),
		Host2Socket:    os.Getenv("LAB_HOST2_SOCKET"),
		Host1Addr:      os.Getenv("LAB_HOST1_ADDR"),
		Host2Addr:      os.Getenv("LAB_HOST2_ADDR"),
		IncusHTTPSPort: os.Getenv("LAB_INCUS_HTTPS_PORT"),
		SSHPort:        os.Getenv("LAB_SSH_PORT"),
		GatewayPort:    os.Getenv("LAB_GATEWAY_PORT"),
		VaultAddr:      os.Getenv("LAB_VAULT_ADDR"),
		VaultToken:     os.Getenv("LAB_VAULT_TOKEN"),
		LibvirtTLSPort: os.Getenv("LAB_LIBVIRT_TLS_PORT"),
		RepoRoot:       RepoRoot(),
	}
	if l.State != "" {
		l.SSHKey = filepath.Join(l.State, "ssh", "id_ed25519")
	}
	if l.Host1Socket == "" {
		missing(t, "LAB_HOST1_SOCKET is not set")
	}
	if _, err := os.Stat(l.Host1Socket); err != nil {
		missing(t, "incusd socket "+l.Host1Socket+" is missing")
	}
	return l
}

// RequireVault fails/skips unless the lab's OpenBao server answers.
func (l *Lab) RequireVault(t testing.TB) {
	t.Helper()
	if l.VaultAddr == "" {
		missing(t, "LAB_VAULT_ADDR is not set")
	}
	if out, err := exec.Command("curl", "-fsS", l.VaultAddr+"/v1/sys/health").CombinedOutput(); err != nil {
		missing(t, "OpenBao at "+l.VaultAddr+" does not answer: "+strings.TrimSpace(string(out)))
	}
}

func missing(t testing.TB, why string) {
	t.Helper()
	msg := "lab not up (" + why + "): run `make lab-up` and `eval \"$(lab/lab.sh env)\"`, or `make test`"
	if os.Getenv("LAB_REQUIRED") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
