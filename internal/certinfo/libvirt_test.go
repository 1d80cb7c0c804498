package certinfo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/testlab"
)

func TestReadCertsDescribesEachCertificateAndEveryMissingFile(t *testing.T) {
	dir := t.TempDir()
	ca := testlab.NewTestCA(t, "lab CA", testlab.TestCAOptions{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	expired := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	client := ca.CertWith(t, key, &x509.Certificate{
		Subject:   pkix.Name{Country: []string{"AU"}, Organization: []string{"libvirt.org"}, CommonName: "host1"},
		NotBefore: expired.Add(-time.Hour), NotAfter: expired, DNSNames: []string{"Host1.Example"}})
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caPath, clientPath := write("ca.pem", ca.CertPEM), write("client.pem", string(client))
	junk := write("junk.pem", "not pem")
	got := ReadCerts([]CertFile{{caPath, "ca"}, {clientPath, "client"}, {filepath.Join(dir, "gone.pem"), "server"}, {junk, "server"}})
	if len(got) != 4 {
		t.Fatalf("want 4 items: %+v", got)
	}
	if got[0].Type != "ca" || got[0].Subject != "O=libvirt.org,CN=lab CA" || got[0].Subject != got[0].Issuer {
		t.Fatalf("ca: %+v", got[0])
	}
	c := got[1]
	// GnuTLS's order (as encoded), as tls_allowed_dn_list is written
	if c.Subject != "C=AU,O=libvirt.org,CN=host1" || c.Issuer != "O=libvirt.org,CN=lab CA" ||
		c.NotAfter != expired.UTC().Format(time.RFC3339) || len(c.Fingerprint) != 64 || strings.Join(c.SAN, ",") != "DNS:host1.example" {
		t.Fatalf("client: %+v", c)
	}
	if got[2].Exists || got[2].Error != "" || got[2].Path != filepath.Join(dir, "gone.pem") {
		t.Fatalf("missing file: %+v", got[2])
	}
	if !got[3].Exists || got[3].Error != "no PEM certificate" {
		t.Fatalf("junk file: %+v", got[3])
	}
}

func TestReadLibvirtdAllowedList(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "libvirtd.conf")
	os.WriteFile(conf, []byte("#tls_allowed_dn_list = [\"DN1\"]\ntls_allowed_dn_list = [\n  \"C=AU,CN=host1\",\n  \"C=AU,CN=host*\"\n]\n"), 0o600)
	d := ReadLibvirtd(conf)
	if !d.Exists || d.Error != "" || strings.Join(d.AllowedDNs, "|") != "C=AU,CN=host1|C=AU,CN=host*" {
		t.Fatalf("%+v", d)
	}
	os.WriteFile(conf, []byte("listen_tls = 1\n"), 0o600)
	if d := ReadLibvirtd(conf); d.AllowedDNs != nil || d.Error != "" {
		t.Fatalf("unset list: %+v", d)
	}
	os.WriteFile(conf, []byte("tls_allowed_dn_list = 3\n"), 0o600)
	if d := ReadLibvirtd(conf); !strings.Contains(d.Error, "line 1: tls_allowed_dn_list is not a list of strings") {
		t.Fatalf("not a list: %+v", d)
	}
	os.WriteFile(conf, []byte("tls_allowed_dn_list = [\n"), 0o600)
	if d := ReadLibvirtd(conf); d.Error == "" {
		t.Fatalf("syntax error: %+v", d)
	}
	if d := ReadLibvirtd(filepath.Join(dir, "none")); d.Exists || d.Error != "" {
		t.Fatalf("missing: %+v", d)
	}
	if ReadLibvirtd("") != nil {
		t.Fatal("no path: not asked")
	}
}
