package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/testlab"
)

func TestMain(m *testing.M) { testlab.ModuleMain(m) }

// runModule runs the built libvirt_cert binary as Ansible does.
func runModule(t *testing.T, args map[string]any) (map[string]any, string) {
	t.Helper()
	return testlab.RunModule(t, "libvirt_cert", args)
}

// newCA is a CA that expires tomorrow, as PEM text.
func newCA(t *testing.T) (certPEM, keyPEM string) {
	ca := testlab.NewTestCA(t, "binary test CA", testlab.TestCAOptions{NotAfter: time.Now().Add(24 * time.Hour)})
	return ca.CertPEM, ca.KeyPEM
}

func keyLines(keyPEM string) []string {
	var out []string
	for _, l := range strings.Split(keyPEM, "\n") {
		if len(l) > 20 && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}

// The binary as Ansible runs it: ca_key is a placeholder in the invocation, neither the
// CA key nor the key generated on the host appear in the output, and the second run
// changes nothing.
func TestBinaryIssuesMasksAndConverges(t *testing.T) {
	caCert, caKey := newCA(t)
	dir := t.TempDir()
	args := map[string]any{"ca_cert": caCert, "ca_key": caKey, "subject": map[string]any{"common_name": "host1", "organization": "libvirt.org"},
		"cert_path": filepath.Join(dir, "clientcert.pem"), "key_path": filepath.Join(dir, "private", "clientkey.pem"),
		"ca_cert_path": filepath.Join(dir, "cacert.pem"), "owner": strconv.Itoa(os.Getuid()), "group": strconv.Itoa(os.Getgid()),
		"_ansible_diff": true}
	res, out := runModule(t, args)
	if res["changed"] != true || res["subject_dn"] != "O=libvirt.org,CN=host1" {
		t.Fatalf("result: %s", out)
	}
	inv := res["invocation"].(map[string]any)["module_args"].(map[string]any)
	if inv["ca_key"] != ansible.NoLogPlaceholder {
		t.Fatalf("ca_key in invocation: %v", inv["ca_key"])
	}
	generated, err := os.ReadFile(filepath.Join(dir, "private", "clientkey.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range append(keyLines(caKey), keyLines(string(generated))...) {
		if strings.Contains(out, l) {
			t.Fatalf("key material in the output: %s", out)
		}
	}
	// The CA expires tomorrow: the certificate lasts as long as the CA, so it is not
	// renewed on every run; the task warns about the CA instead.
	again, out := runModule(t, args)
	if again["changed"] != false || again["fingerprint"] != res["fingerprint"] {
		t.Fatalf("second run: %s", out)
	}
	if !strings.Contains(out, "expires on") || !strings.Contains(out, "renew the CA") {
		t.Fatalf("no warning about the CA: %s", out)
	}
}

func TestBinaryFailsOnBothSources(t *testing.T) {
	caCert, caKey := newCA(t)
	res, out := runModule(t, map[string]any{"ca_cert": caCert, "ca_key": caKey,
		"vault_pki": map[string]any{"addr": "http://127.0.0.1:1", "role": "libvirt-client", "token": "s.0123456789abcdef"}})
	if res["failed"] != true || !strings.Contains(res["msg"].(string), "parameters are mutually exclusive: ca_cert|vault_pki") {
		t.Fatalf("result: %s", out)
	}
	for _, l := range keyLines(caKey) {
		if strings.Contains(out, l) {
			t.Fatalf("CA key in the output: %s", out)
		}
	}
}
