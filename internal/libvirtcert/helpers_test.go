package libvirtcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/testlab"
)

// testCA is a CA made for a test.
type testCA struct {
	Cert            *x509.Certificate
	Key             crypto.Signer
	CertPEM, KeyPEM string
}

type caOpts struct {
	notCA     bool
	notBefore time.Time
	notAfter  time.Time
}

func newCA(t testing.TB, cn string, o caOpts) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(10 * 365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"libvirt.org"}},
		NotBefore: o.notBefore, NotAfter: o.notAfter,
		BasicConstraintsValid: true, IsCA: !o.notCA,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyPEM, _ := MarshalKey(key)
	return &testCA{Cert: cert, Key: key, CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), KeyPEM: string(keyPEM)}
}

// args returns the module arguments for an inline CA.
func (c *testCA) args() map[string]any {
	return map[string]any{"ca_cert": c.CertPEM, "ca_key": c.KeyPEM}
}

// certWith signs a certificate for key with a template the test controls (expired ones,
// wrong extensions), bypassing the module.
func (c *testCA) certWith(t testing.TB, key crypto.Signer, tmpl *x509.Certificate) []byte {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, key.Public(), c.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// seedSubject is the seed's template fields for a client.
func seedSubject(cn string) map[string]any {
	return map[string]any{"country": "AU", "state": "Queensland", "locality": "Brisbane", "organization": "libvirt.org", "common_name": cn}
}

// files is a test's three target files under a temp dir, owned by the test's user.
type files struct {
	Dir, Cert, Key, CA string
}

func newFiles(t testing.TB, dir string) files {
	return files{Dir: dir, Cert: filepath.Join(dir, "clientcert.pem"), Key: filepath.Join(dir, "private", "clientkey.pem"), CA: filepath.Join(dir, "cacert.pem")}
}

func (f files) args() map[string]any {
	return map[string]any{"cert_path": f.Cert, "key_path": f.Key, "ca_cert_path": f.CA,
		"owner": strconv.Itoa(os.Getuid()), "group": strconv.Itoa(os.Getgid())}
}

// snapshot is every file under dir with its content, to show that a failed run touched nothing.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = fi.Mode().String() + ":" + string(b)
		}
		return nil
	})
	return out
}

var sidecar []byte

// run executes the module in-process exactly as the binary does (args file in, one
// masked result out).
func run(t testing.TB, args map[string]any, flags ...string) (map[string]any, bool) {
	t.Helper()
	if sidecar == nil {
		var err error
		if sidecar, err = os.ReadFile(filepath.Join(testlab.RepoRoot(), "modules", "libvirt_cert", "libvirt_cert.yml")); err != nil {
			t.Fatal(err)
		}
	}
	all := map[string]any{}
	for k, v := range args {
		all[k] = v
	}
	for _, f := range flags {
		all["_ansible_"+f] = true
	}
	data, _ := json.Marshal(all)
	path := filepath.Join(t.TempDir(), "args.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return ansible.Execute(sidecar, path, Run)
}

func merge(ms ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// mustRun runs the module and fails the test when it fails.
func mustRun(t testing.TB, args map[string]any, flags ...string) map[string]any {
	t.Helper()
	res, failed := run(t, args, flags...)
	if failed {
		t.Fatalf("module failed: %v", res["msg"])
	}
	return res
}

// noSecret fails when any line of a PEM secret shows up in a result.
func noSecret(t testing.TB, res map[string]any, secretPEM string) {
	t.Helper()
	out, _ := json.Marshal(res)
	for _, line := range strings.Split(secretPEM, "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") && strings.Contains(string(out), line) {
			t.Fatalf("a line of a secret is in the result: %s", out)
		}
	}
}

func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ParseCerts(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}
