package clientcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/testlab"
	localtls "github.com/lxc/incus/v6/shared/tls"
)

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	c, err := ParsePublicCertificate(data)
	if err != nil {
		t.Fatal(err)
	}
	return c.Cert
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// The certificate is the kind `incus remote generate-certificate` makes (compared with the
// incus library's own generator), with the client name as its subject and the seed's
// 10 years; key 0600, directory 0700.
func TestGenerateMakesAnIncusClientCertificateNamedAfterTheClient(t *testing.T) {
	w := newWorkstation(t)
	r := w.ok("generate", "workstation-admin-test")
	certPEM, keyPEM := w.read("client.crt"), w.read("client.key")
	cert := parseCert(t, certPEM)

	incusCert, incusKey, err := localtls.GenerateMemCert(true, false)
	if err != nil {
		t.Fatal(err)
	}
	ref := parseCert(t, incusCert)
	if cert.Subject.CommonName != "workstation-admin-test" {
		t.Errorf("subject %q, want CN=workstation-admin-test", cert.Subject)
	}
	if KeyType(cert) != KeyType(ref) || KeyType(cert) != "ECDSA P-384" {
		t.Errorf("key type %s, incus makes %s", KeyType(cert), KeyType(ref))
	}
	if cert.KeyUsage != ref.KeyUsage || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != ref.ExtKeyUsage[0] ||
		cert.BasicConstraintsValid != ref.BasicConstraintsValid || cert.IsCA != ref.IsCA {
		t.Errorf("usage %v/%v/%v, incus makes %v/%v/%v", cert.KeyUsage, cert.ExtKeyUsage, cert.BasicConstraintsValid,
			ref.KeyUsage, ref.ExtKeyUsage, ref.BasicConstraintsValid)
	}
	kb, _ := pem.Decode(keyPEM)
	rb, _ := pem.Decode(incusKey)
	if kb == nil || kb.Type != rb.Type {
		t.Fatalf("key PEM type %v, incus writes %s", kb, rb.Type)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	key, err := ParsePrivateKey(keyPEM)
	if err != nil || !KeyMatches(cert, key) || key.Public().(*ecdsa.PublicKey).Curve != elliptic.P384() {
		t.Fatalf("key does not match the certificate: %v", err)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d != DefaultValidityDays*24*time.Hour {
		t.Errorf("validity %v, want 3650 days", d)
	}
	if got := mode(t, filepath.Join(w.conf, "client.key")); got != 0o600 {
		t.Errorf("client.key mode %o", got)
	}
	if got := mode(t, w.conf); got != 0o700 {
		t.Errorf("%s mode %o", w.conf, got)
	}
	if !strings.Contains(r.stdout, Fingerprint(cert.Raw)) || !strings.Contains(r.stdout, "extract > inventory/incus/trusted-client-certs/workstation-admin-test.crt") {
		t.Errorf("generate does not show the fingerprint and the next step:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, strings.Split(string(keyPEM), "\n")[1]) {
		t.Fatal("generate printed the private key")
	}

	w2 := newWorkstation(t)
	w2.ok("generate", "short-lived", "--days", "30")
	c2 := parseCert(t, w2.read("client.crt"))
	if d := c2.NotAfter.Sub(c2.NotBefore); d != 30*24*time.Hour {
		t.Errorf("--days 30 gave %v", d)
	}
}

func TestGenerateTwiceRefusesAndForceKeepsTheOldPairAside(t *testing.T) {
	w := newWorkstation(t)
	w.ok("generate", "laptop")
	oldCert, oldKey := w.read("client.crt"), w.read("client.key")
	before := testlab.Tree(t, w.home)

	r := w.run("generate", "laptop")
	assertOneLineFailure(t, r, filepath.Join(w.conf, "client.key")+" already exists")
	if !strings.Contains(r.stderr, "--force") || !strings.Contains(r.stderr, "backup") {
		t.Errorf("the refusal does not say how to keep or replace the pair: %s", r.stderr)
	}
	if testlab.Tree(t, w.home) != before {
		t.Fatal("the refused generate changed files")
	}

	w.now = w.now.Add(time.Minute)
	stamp := w.now.UTC().Format("20060102T150405Z")
	r = w.ok("generate", "laptop", "--force")
	if string(w.read("client.crt."+stamp)) != string(oldCert) || string(w.read("client.key."+stamp)) != string(oldKey) {
		t.Fatal("the old pair was not kept aside byte for byte")
	}
	if mode(t, filepath.Join(w.conf, "client.key."+stamp)) != 0o600 {
		t.Error("the old key aside lost its mode")
	}
	if string(w.read("client.crt")) == string(oldCert) || string(w.read("client.key")) == string(oldKey) {
		t.Fatal("--force did not make a new pair")
	}
	if _, err := LoadClientPair(w.conf); err != nil {
		t.Fatalf("the new pair does not belong together: %v", err)
	}
	if !strings.Contains(r.stdout, "client.key."+stamp) {
		t.Errorf("--force does not say where the old pair went:\n%s", r.stdout)
	}
}

// A private key appended to client.crt never comes out of extract.
func TestExtractPrintsOnlyThePublicCertificate(t *testing.T) {
	w := newWorkstation(t)
	w.ok("generate", "ci-runner")
	certPEM, keyPEM := w.read("client.crt"), w.read("client.key")
	if err := os.WriteFile(filepath.Join(w.conf, "client.crt"), append(append([]byte("junk before\n"), certPEM...), keyPEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	r := w.ok("extract")
	if r.stdout != string(certPEM) {
		t.Fatalf("extract printed\n%s\nwant exactly the certificate", r.stdout)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(keyPEM)), "\n")[1:] {
		if strings.Contains(r.stdout+r.stderr, strings.TrimSpace(line)) && !strings.HasPrefix(line, "-----") {
			t.Fatal("extract printed a line of the private key")
		}
	}
	if strings.Contains(r.stdout, "PRIVATE KEY") {
		t.Fatal("extract printed a key block")
	}
	if !strings.Contains(r.stderr, "also holds a private key") {
		t.Errorf("no warning about the key in client.crt: %q", r.stderr)
	}
}

func TestBackupCopiesThePairPrivatelyAndSaysWhatNext(t *testing.T) {
	w := newWorkstation(t)
	w.ok("generate", "laptop")
	r := w.ok("backup")
	dir := filepath.Join(w.home, "incus-cert-backup-"+w.now.Format("2006-01-02"))
	if mode(t, dir) != 0o700 {
		t.Errorf("%s mode %o", dir, mode(t, dir))
	}
	for _, f := range []string{"client.crt", "client.key"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || string(data) != string(w.read(f)) {
			t.Fatalf("%s not copied: %v", f, err)
		}
		if mode(t, filepath.Join(dir, f)) != 0o600 {
			t.Errorf("%s mode %o", f, mode(t, filepath.Join(dir, f)))
		}
	}
	for _, want := range []string{"password manager", "rm -rf " + dir, "Never commit client.key"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("backup does not say %q:\n%s", want, r.stdout)
		}
	}
	// A second backup the same day goes to its own directory; the first stays.
	r2 := w.ok("backup")
	if strings.Contains(r2.stdout, dir+"/ ") || !strings.Contains(r2.stdout, dir+"-") {
		t.Errorf("second backup did not get its own directory:\n%s", r2.stdout)
	}
}

func TestInfoShowsTheFingerprintAsIncusAndOpenSSLShowItAndWarnsBeforeExpiry(t *testing.T) {
	w := newWorkstation(t)
	w.ok("generate", "expiring", "--days", "20")
	cert := parseCert(t, w.read("client.crt"))
	fp := Fingerprint(cert.Raw)
	r := w.ok("info")
	for _, want := range []string{"Subject:      CN=expiring", "Fingerprint:  " + fp, fp[:12] + " in `incus config trust list`",
		"Key type:     ECDSA P-384", "Client auth:  yes", "Days left:    19", "belongs to this certificate",
		"Not after:    " + cert.NotAfter.UTC().Format(time.RFC3339)} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("info does not show %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "warning: the certificate expires in 19 days") {
		t.Errorf("no expiry warning: %q", r.stderr)
	}
	// The seed's troubleshooting step: openssl x509 -fingerprint -sha256 says the same.
	out, err := exec.Command("openssl", "x509", "-in", filepath.Join(w.conf, "client.crt"), "-noout", "-fingerprint", "-sha256").Output()
	if err != nil {
		t.Skipf("openssl: %v", err)
	}
	ossl := strings.TrimSpace(strings.SplitN(string(out), "=", 2)[1])
	if !strings.Contains(r.stdout, "SHA256 Fingerprint="+ossl) {
		t.Errorf("openssl says %s, info:\n%s", ossl, r.stdout)
	}

	w2 := newWorkstation(t)
	w2.ok("generate", "long-lived")
	if r := w2.ok("info"); r.stderr != "" {
		t.Errorf("a 10-year certificate warns: %q", r.stderr)
	}
	w2.now = w2.now.AddDate(11, 0, 0)
	if r := w2.ok("info"); !strings.Contains(r.stderr, "EXPIRED") {
		t.Errorf("an expired certificate does not say so: %q", r.stderr)
	}
}

func TestInfoNamesAKeyThatIsNotTheCertificates(t *testing.T) {
	w := newWorkstation(t)
	w.ok("generate", "one")
	key := w.read("client.key")
	w.ok("generate", "two", "--force")
	if err := os.WriteFile(filepath.Join(w.conf, "client.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := w.ok("info"); !strings.Contains(r.stdout, "does NOT belong to this certificate") {
		t.Errorf("info does not notice the foreign key:\n%s", r.stdout)
	}
	assertOneLineFailure(t, w.run("extract"), "is not the key of")
	assertOneLineFailure(t, w.run("backup"), "do not belong together")
}

func TestHelpListsEveryCommand(t *testing.T) {
	w := newWorkstation(t)
	r := w.ok("help")
	for _, verb := range []string{"generate <client-name>", "backup", "extract", "info", "add-remote <name> <address> [port]",
		"list-remotes", "add-to-inventory", "--accept-certificate", "--fingerprint", "--force", "--days"} {
		if !strings.Contains(r.stdout, verb) {
			t.Errorf("help does not mention %q", verb)
		}
	}
	if regexp.MustCompile(`(?m)^.{91,}$`).MatchString(Help) {
		t.Error("help has lines over 90 characters")
	}
}
