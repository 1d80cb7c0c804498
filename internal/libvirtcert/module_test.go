package libvirtcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/testlab"
)

func TestFirstRunIssuesTheCertificateThenConverges(t *testing.T) {
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	f := newFiles(t, t.TempDir())
	args := merge(ca.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("host1")})

	res := mustRun(t, args)
	if res["changed"] != true || res["reason"] != "certificate and key missing" {
		t.Fatalf("first run: changed=%v reason=%q", res["changed"], res["reason"])
	}
	if res["subject_dn"] != "C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host1" {
		t.Fatalf("subject_dn %q", res["subject_dn"])
	}
	noSecret(t, res, ca.KeyPEM)
	keyPEM, _ := os.ReadFile(f.Key)
	noSecret(t, res, string(keyPEM))

	c := readCert(t, f.Cert)
	if !c.BasicConstraintsValid || c.IsCA {
		t.Error("basicConstraints is not CA:FALSE")
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Errorf("keyUsage %v", c.KeyUsage)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("extKeyUsage %v", c.ExtKeyUsage)
	}
	if len(c.SubjectKeyId) == 0 || len(c.AuthorityKeyId) == 0 {
		t.Error("SKI or AKI missing")
	}
	for _, ext := range c.Extensions {
		id := ext.Id.String()
		if (id == "2.5.29.19" || id == "2.5.29.15") && !ext.Critical {
			t.Errorf("extension %s is not critical", id)
		}
	}
	if k, _ := SpecOf(c.PublicKey); k != (KeySpec{"rsa", 2048}) {
		t.Errorf("key %v, want the default rsa 2048", k)
	}
	if got := c.NotAfter.Sub(c.NotBefore); got < 364*24*time.Hour || got > 366*24*time.Hour {
		t.Errorf("validity %v, want about 365 days", got)
	}
	for path, want := range map[string]os.FileMode{f.Cert: 0o400, f.Key: 0o400, f.CA: 0o444, filepath.Dir(f.Key): 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	if res["selinux"] != "SELinux is not enabled on this host: no label set" && !strings.HasPrefix(res["selinux"].(string), "SELinux is enabled") {
		t.Errorf("selinux %q", res["selinux"])
	}
	if ca2, _ := os.ReadFile(f.CA); string(ca2) != ca.CertPEM {
		t.Error("the CA certificate was not installed")
	}

	again := mustRun(t, args)
	if again["changed"] != false || again["reason"] != "" {
		t.Fatalf("second run: changed=%v reason=%q", again["changed"], again["reason"])
	}
	if again["fingerprint"] != res["fingerprint"] || again["serial"] != res["serial"] {
		t.Error("the second run reports another certificate")
	}
}

// Each case changes one thing after a converged run; the module must name it.
func TestRenewalReasons(t *testing.T) {
	cases := []struct {
		name   string
		change func(t *testing.T, f files, args map[string]any)
		reason string
	}{
		{"organization", func(t *testing.T, f files, a map[string]any) {
			s := testlab.SeedSubject("host1")
			s["organization"] = "example.org"
			a["subject"] = s
		}, "subject changed (C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host1 -> C=AU,ST=Queensland,L=Brisbane,O=example.org,CN=host1)"},
		{"san", func(t *testing.T, f files, a map[string]any) {
			s := testlab.SeedSubject("host1")
			s["san"] = []string{"host1.example.org", "192.0.2.1"}
			a["subject"] = s
		}, "SAN changed ([] -> [DNS:host1.example.org, IP:192.0.2.1])"},
		{"key type", func(t *testing.T, f files, a map[string]any) { a["key_type"] = "ecdsa" }, "key type changed (rsa 2048 -> ecdsa P-256)"},
		{"key size", func(t *testing.T, f files, a map[string]any) { a["key_size"] = 3072 }, "key type changed (rsa 2048 -> rsa 3072)"},
		{"type", func(t *testing.T, f files, a map[string]any) { a["type"] = "server" }, "certificate unfit for a libvirt server: extKeyUsage lacks serverAuth"},
		{"renew window", func(t *testing.T, f files, a map[string]any) { a["renew_before_days"] = 366; a["validity_days"] = 400 }, "expires within renew_before_days"},
		{"other CA", func(t *testing.T, f files, a map[string]any) {
			other := testlab.NewTestCA(t, "other CA", testlab.TestCAOptions{})
			a["ca_cert"], a["ca_key"] = other.CertPEM, other.KeyPEM
		}, "not signed by the CA"},
		{"key replaced", func(t *testing.T, f files, a map[string]any) {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			pemKey, _ := MarshalKey(k)
			os.WriteFile(f.Key, pemKey, 0o400)
		}, "key does not match the certificate"},
		{"cert garbage", func(t *testing.T, f files, a map[string]any) { os.WriteFile(f.Cert, []byte("junk"), 0o400) }, "certificate unparsable: no PEM certificate"},
		{"key missing", func(t *testing.T, f files, a map[string]any) { os.Remove(f.Key) }, "key missing"},
		{"CA file missing", func(t *testing.T, f files, a map[string]any) { os.Remove(f.CA) }, "CA certificate file missing"},
		{"CA file differs", func(t *testing.T, f files, a map[string]any) {
			os.WriteFile(f.CA, []byte(testlab.NewTestCA(t, "x", testlab.TestCAOptions{}).CertPEM), 0o444)
		}, "CA certificate file differs from the CA"},
		{"mode", func(t *testing.T, f files, a map[string]any) { os.Chmod(f.Cert, 0o644) }, "owner, mode or SELinux label differ: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
			f := newFiles(t, t.TempDir())
			args := merge(ca.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("host1")})
			first := mustRun(t, args)
			tc.change(t, f, args)

			before := snapshot(t, f.Dir)
			check := mustRun(t, args, "check_mode", "diff")
			if check["changed"] != true || !strings.HasPrefix(check["reason"].(string), tc.reason) {
				t.Fatalf("check mode: changed=%v reason=%q, want %q", check["changed"], check["reason"], tc.reason)
			}
			if after := snapshot(t, f.Dir); !equalMaps(before, after) {
				t.Fatal("check mode wrote files")
			}
			res := mustRun(t, args, "diff")
			if res["changed"] != true || res["reason"] != check["reason"] {
				t.Fatalf("real run: changed=%v reason=%q, check mode predicted %q", res["changed"], res["reason"], check["reason"])
			}
			if tc.name == "mode" || strings.HasPrefix(tc.name, "CA file") {
				if res["fingerprint"] != first["fingerprint"] {
					t.Error("a file fix issued a new certificate")
				}
			} else if res["fingerprint"] == first["fingerprint"] {
				t.Error("no new certificate was issued")
			}
			if again := mustRun(t, args); again["changed"] != false {
				t.Fatalf("not converged after the fix: reason %q", again["reason"])
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestCheckModePredictsTheFirstRunAndWritesNothing(t *testing.T) {
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	f := newFiles(t, t.TempDir())
	args := merge(ca.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("admindesktop")})
	check := mustRun(t, args, "check_mode", "diff")
	if check["changed"] != true || check["reason"] != "certificate and key missing" {
		t.Fatalf("check: %v %q", check["changed"], check["reason"])
	}
	if entries, _ := os.ReadDir(f.Dir); len(entries) != 0 {
		t.Fatalf("check mode created %v", entries)
	}
	diff := check["diff"].(map[string]any)
	if !strings.Contains(diff["after"].(string), "subject: C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=admindesktop") {
		t.Errorf("diff after: %q", diff["after"])
	}
	res := mustRun(t, args, "diff")
	if res["reason"] != check["reason"] || res["subject_dn"] != check["subject_dn"] {
		t.Fatalf("real run %q %q, check predicted %q %q", res["reason"], res["subject_dn"], check["reason"], check["subject_dn"])
	}
	d := res["diff"].(map[string]any)
	if !strings.Contains(d["after"].(string), "fingerprint: "+res["fingerprint"].(string)) || strings.Contains(d["after"].(string), "PRIVATE") {
		t.Errorf("diff after: %q", d["after"])
	}
}

// Every bad input fails with a message naming the problem, touches no file and never
// shows the CA key.
func TestBadInputChangesNothing(t *testing.T) {
	good := testlab.NewTestCA(t, "good CA", testlab.TestCAOptions{})
	other := testlab.NewTestCA(t, "other CA", testlab.TestCAOptions{})
	expired := testlab.NewTestCA(t, "expired CA", testlab.TestCAOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	notCA := testlab.NewTestCA(t, "not a CA", testlab.TestCAOptions{NotCA: true})
	cases := []struct {
		name string
		args map[string]any
		msg  string
	}{
		{"key of another CA", map[string]any{"ca_cert": good.CertPEM, "ca_key": other.KeyPEM}, "ca_key does not match ca_cert"},
		{"not a CA", notCA.Args(), "is not a CA certificate"},
		{"expired CA", expired.Args(), "expired on"},
		{"both sources", merge(good.Args(), map[string]any{"vault_pki": map[string]any{"addr": "http://127.0.0.1:1", "role": "x", "token": "not-a-real-token"}}), "mutually exclusive"},
		{"neither source", map[string]any{}, "any of the following are missing: ca_cert, vault_pki"},
		{"cert without key", map[string]any{"ca_cert": good.CertPEM}, "ca_cert"},
		{"ca_cert garbage", map[string]any{"ca_cert": "junk", "ca_key": good.KeyPEM}, "ca_cert: no PEM certificate"},
		{"ca_key garbage", map[string]any{"ca_cert": good.CertPEM, "ca_key": "-----BEGIN PRIVATE KEY-----\nAAAAsecretsecretsecretsecret\n-----END PRIVATE KEY-----\n"}, "ca_key: PRIVATE KEY block does not parse"},
		{"bad key size", merge(good.Args(), map[string]any{"key_size": 1024}), "key_size 1024 is not supported for rsa"},
		{"renew >= validity", merge(good.Args(), map[string]any{"validity_days": 10, "renew_before_days": 10}), "renew_before_days (10)"},
		{"bad mode", merge(good.Args(), map[string]any{"mode": "rw"}), `mode "rw" is not an octal`},
		{"relative path", merge(good.Args(), map[string]any{"cert_path": "x.pem"}), `cert_path "x.pem" is not an absolute path`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFiles(t, t.TempDir())
			// A converged installation that a bad run must leave exactly as it is.
			base := merge(good.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("host1")})
			mustRun(t, base)
			before := snapshot(t, f.Dir)
			args := merge(f.args(), map[string]any{"subject": testlab.SeedSubject("host1")}, tc.args)
			if tc.name == "neither source" || tc.name == "cert without key" {
				delete(args, "ca_cert")
				delete(args, "ca_key")
				for k, v := range tc.args {
					args[k] = v
				}
			}
			res, failed := run(t, args)
			if !failed {
				t.Fatalf("did not fail: %v", res)
			}
			if msg, _ := res["msg"].(string); !strings.Contains(msg, tc.msg) {
				t.Fatalf("msg %q, want it to contain %q", msg, tc.msg)
			}
			if after := snapshot(t, f.Dir); !equalMaps(before, after) {
				t.Fatal("a failed run changed files")
			}
			for _, k := range []*testlab.TestCA{good, other, expired, notCA} {
				noSecret(t, res, k.KeyPEM)
			}
			noSecret(t, res, "-----BEGIN PRIVATE KEY-----\nAAAAsecretsecretsecretsecret\n")
		})
	}
}

func TestBackupKeepsTheReplacedFiles(t *testing.T) {
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	f := newFiles(t, t.TempDir())
	args := merge(ca.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("host2"), "backup": true})
	mustRun(t, args)
	oldCert, _ := os.ReadFile(f.Cert)
	oldKey, _ := os.ReadFile(f.Key)
	args["subject"] = testlab.SeedSubject("host2-renamed")
	res := mustRun(t, args)
	backups, _ := res["backup_files"].([]any)
	if len(backups) != 2 {
		t.Fatalf("backup_files %v, want the old key and certificate", res["backup_files"])
	}
	found := map[string]bool{}
	for _, b := range backups {
		data, err := os.ReadFile(b.(string))
		if err != nil {
			t.Fatal(err)
		}
		found[string(data)] = true
	}
	if !found[string(oldCert)] || !found[string(oldKey)] {
		t.Error("the backups do not hold the replaced files")
	}
	noSecret(t, res, string(oldKey))
}

func TestStateAbsentRemovesCertAndKeyAndKeepsTheCA(t *testing.T) {
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	f := newFiles(t, t.TempDir())
	mustRun(t, merge(ca.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("host1")}))
	absent := merge(f.args(), map[string]any{"state": "absent"})
	check := mustRun(t, absent, "check_mode")
	if check["changed"] != true {
		t.Fatal("check mode predicts no change")
	}
	if _, err := os.Stat(f.Cert); err != nil {
		t.Fatal("check mode removed the certificate")
	}
	res := mustRun(t, absent)
	if res["changed"] != true || res["reason"] != check["reason"] {
		t.Fatalf("absent: %v %q (check said %q)", res["changed"], res["reason"], check["reason"])
	}
	for _, p := range []string{f.Cert, f.Key} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists", p)
		}
	}
	if _, err := os.Stat(f.CA); err != nil {
		t.Error("the CA certificate was removed")
	}
	if again := mustRun(t, absent); again["changed"] != false {
		t.Error("absent is not idempotent")
	}
}

func TestCertificateNeverOutlivesTheCA(t *testing.T) {
	ca := testlab.NewTestCA(t, "short CA", testlab.TestCAOptions{NotAfter: time.Now().Add(100 * 24 * time.Hour)})
	f := newFiles(t, t.TempDir())
	mustRun(t, merge(ca.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("host1")}))
	if c := readCert(t, f.Cert); c.NotAfter.After(ca.Cert.NotAfter) {
		t.Fatalf("not_after %v is after the CA's %v", c.NotAfter, ca.Cert.NotAfter)
	}
}

func TestServerDefaultsAndSANs(t *testing.T) {
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	dir := t.TempDir()
	args := merge(ca.Args(), map[string]any{"type": "server", "key_type": "ecdsa", "key_size": 384,
		"cert_path": filepath.Join(dir, "servercert.pem"), "key_path": filepath.Join(dir, "private", "serverkey.pem"), "ca_cert_path": filepath.Join(dir, "cacert.pem"),
		"owner": "0", "group": "0",
		"subject": map[string]any{"organization": "libvirt.org", "common_name": "host1", "san": []string{"Host1.Example.org", "127.0.0.1", "::1"}}})
	if os.Getuid() != 0 {
		args["owner"], args["group"] = "", ""
	}
	res := mustRun(t, args)
	c := readCert(t, filepath.Join(dir, "servercert.pem"))
	if c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || res["key"] != "ecdsa P-384" {
		t.Fatalf("eku %v key %v", c.ExtKeyUsage, res["key"])
	}
	if got := strings.Join(SANList(c.DNSNames, c.IPAddresses), " "); got != "DNS:host1.example.org IP:127.0.0.1 IP:::1" {
		t.Fatalf("SANs %s", got)
	}
	if mustRun(t, args)["changed"] != false {
		t.Fatal("not converged")
	}
}

// Missing directories are made as libvirt wants them: private/ 0700, the ones above 0755.
func TestMissingDirectoriesGetLibvirtsModes(t *testing.T) {
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	root := t.TempDir()
	f := files{Dir: root, Cert: filepath.Join(root, "pki/libvirt/clientcert.pem"),
		Key: filepath.Join(root, "pki/libvirt/private/clientkey.pem"), CA: filepath.Join(root, "pki/CA/cacert.pem")}
	mustRun(t, merge(ca.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("host1")}))
	for dir, want := range map[string]os.FileMode{"pki": 0o755, "pki/libvirt": 0o755, "pki/libvirt/private": 0o700, "pki/CA": 0o755} {
		fi, err := os.Stat(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", dir, fi.Mode().Perm(), want)
		}
	}
}

// A certificate made with certtool from a template encodes C, O, L, ST, CN (its order): its DN
// differs from the one the module makes, so it is reissued once, with the reason.
func TestCerttoolOrderCertificateIsReissuedOnce(t *testing.T) {
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	f := newFiles(t, t.TempDir())
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certtoolOrder := pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 6}, Value: "AU"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "libvirt.org"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 7}, Value: "Brisbane"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 8}, Value: "Queensland"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "host1"}},
	}
	raw, _ := asn1.Marshal(certtoolOrder)
	certPEM := ca.CertWith(t, k, &x509.Certificate{RawSubject: raw, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(300 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true})
	keyPEM, _ := MarshalKey(k)
	os.MkdirAll(filepath.Dir(f.Key), 0o700)
	os.WriteFile(f.Cert, certPEM, 0o400)
	os.WriteFile(f.Key, keyPEM, 0o400)
	args := merge(ca.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("host1"), "key_type": "ecdsa"})
	res := mustRun(t, args)
	want := "subject changed (C=AU,O=libvirt.org,L=Brisbane,ST=Queensland,CN=host1 -> C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host1)"
	if res["reason"] != want {
		t.Fatalf("reason %q, want %q", res["reason"], want)
	}
	if again := mustRun(t, args); again["changed"] != false {
		t.Fatalf("reissued again: %q", again["reason"])
	}
}
