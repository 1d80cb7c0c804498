package libvirtcert

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/testlab"
)

// A first issue writes key, certificate and CA into new directories (private/ 0700, the
// others 0755),
// and hands the generated key to onSecret before anything could print it.
func TestApplyIssuesIntoNewDirectoriesAndReportsTheKey(t *testing.T) {
	root := t.TempDir()
	s, err := Resolve(fileOptions(func(o *FileOptions) {
		o.CertPath, o.KeyPath, o.CACertPath = filepath.Join(root, "pki/libvirt/clientcert.pem"),
			filepath.Join(root, "pki/libvirt/private/clientkey.pem"), filepath.Join(root, "pki/CA/cacert.pem")
	}))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	testCA := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	ca, err := NewInlineCA(testCA.CertPEM, testCA.KeyPEM, now)
	if err != nil {
		t.Fatal(err)
	}
	want, err := NewDesired("client", exampleSubject("host1"), KeySpec{"ecdsa", 256}, 365, 30)
	if err != nil {
		t.Fatal(err)
	}
	j := &Job{Settings: s, Type: "client", Backup: true, Want: want}
	j.UseCA(ca.Chain())
	d := Decide(NewCurrent(nil, nil, nil), want, s.Paths, true, now)
	var secrets []string
	res, err := apply(context.Background(), j, &Found{Current: NewCurrent(nil, nil, nil)}, d, ca, now, func(k string) { secrets = append(secrets, k) })
	if err != nil {
		t.Fatal(err)
	}
	issued := res.Issued
	if len(res.Backups) != 0 {
		t.Errorf("backups of files that did not exist: %v", res.Backups)
	}
	keyPEM, err := os.ReadFile(s.Paths.Key)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(secrets, []string{string(keyPEM)}) {
		t.Fatalf("onSecret got %d values, want exactly the written key", len(secrets))
	}
	if got := certOf(t, mustRead(t, s.Paths.Cert)); !got.Equal(issued) {
		t.Error("the certificate file is not the issued certificate")
	}
	if got := mustRead(t, s.Paths.CA); string(got) != testCA.CertPEM {
		t.Error("the CA file is not the CA")
	}
	for dir, mode := range map[string]os.FileMode{"pki": 0o755, "pki/libvirt": 0o755, "pki/libvirt/private": 0o700, "pki/CA": 0o755} {
		if fi, err := os.Stat(filepath.Join(root, dir)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v %v, want mode %v", dir, fi.Mode().Perm(), err, mode)
		}
	}
	if again := Decide(mustReadCurrent(t, s), want, s.Paths, true, now); again.Reason != "" {
		t.Errorf("not converged after apply: %q", again.Reason)
	}
}

// state=absent: the certificate and key go (backed up when asked), the CA file stays.
func TestRemoval(t *testing.T) {
	dir := t.TempDir()
	p := Paths{Cert: filepath.Join(dir, "clientcert.pem"), Key: filepath.Join(dir, "clientkey.pem"), CA: filepath.Join(dir, "cacert.pem")}
	f := newDecideFixture(t)
	for path, data := range map[string][]byte{p.Cert: f.certPEM, p.Key: f.keyPEM, p.CA: f.caPEM} {
		if err := os.WriteFile(path, data, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	r, err := PlanRemoval(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "state absent: " + p.Cert + ", " + p.Key + " present"; r.Reason() != want {
		t.Fatalf("reason %q, want %q", r.Reason(), want)
	}
	if !strings.Contains(r.Before, "subject: C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host1") || strings.Contains(r.Before, "PRIVATE") {
		t.Errorf("before %q", r.Before)
	}
	backups, err := r.Apply(true)
	if err != nil {
		t.Fatal(err)
	}
	if len(backups) != 2 || string(mustRead(t, backups[0])) != string(f.certPEM) || string(mustRead(t, backups[1])) != string(f.keyPEM) {
		t.Fatalf("backups %v do not hold the certificate and the key", backups)
	}
	for _, path := range []string{p.Cert, p.Key} {
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s still exists", path)
		}
	}
	if _, err := os.Stat(p.CA); err != nil {
		t.Error("the CA file was removed")
	}
	again, err := PlanRemoval(p)
	if err != nil || again.Reason() != "" || again.Before != "(unreadable)\n" {
		t.Fatalf("after removal: %v %q %q", err, again.Reason(), again.Before)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustReadCurrent(t *testing.T, s *Settings) *Current {
	t.Helper()
	cur, err := ReadCurrent(s.Paths, s.InstallCACert, s.CertAttrs, s.KeyAttrs, s.CAAttrs)
	if err != nil {
		t.Fatal(err)
	}
	return cur
}
