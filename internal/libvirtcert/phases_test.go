package libvirtcert

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func phaseParams(dir string, change func(*Params)) *Params {
	p := &Params{State: "present", Type: "client", Subject: exampleSubject(""), KeyType: "rsa", KeySize: 2048,
		ValidityDays: 365, RenewBeforeDays: 30, CertPath: filepath.Join(dir, "clientcert.pem"),
		KeyPath: filepath.Join(dir, "private", "clientkey.pem"), CACertPath: filepath.Join(dir, "CA", "cacert.pem"),
		InstallCACert: true, Owner: strconv.Itoa(os.Getuid()), Group: strconv.Itoa(os.Getgid()), Mode: "0400", CACertMode: "0444"}
	if change != nil {
		change(p)
	}
	return p
}

func hostname(name string, err error) func() (string, error) {
	return func() (string, error) { return name, err }
}

func TestResolvePhase(t *testing.T) {
	dir := t.TempDir()
	j, err := resolve(phaseParams(dir, nil), hostname("host7", nil))
	if err != nil {
		t.Fatal(err)
	}
	if j.Want.PrintedDN != "C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host7" {
		t.Errorf("the common name is not the hostname: %s", j.Want.PrintedDN)
	}
	if !slices.Equal(j.Locked(), []string{j.Paths.Cert, j.Paths.CA}) {
		t.Errorf("locked %v, want the certificate and the managed CA file", j.Locked())
	}
	j, err = resolve(phaseParams(dir, func(p *Params) { p.InstallCACert = false }), hostname("host7", nil))
	if err != nil || !slices.Equal(j.Locked(), []string{j.Paths.Cert}) {
		t.Errorf("CA file not managed: locked %v (%v), want the certificate alone", j.Locked(), err)
	}
	// state=absent needs no subject, hence no hostname
	j, err = resolve(phaseParams(dir, func(p *Params) { p.State = "absent" }), hostname("", errors.New("no name")))
	if err != nil || !j.Absent || j.Want != nil {
		t.Errorf("absent: %+v %v", j, err)
	}
	for name, tc := range map[string]struct {
		p    *Params
		host func() (string, error)
		want string
	}{
		"no hostname": {phaseParams(dir, nil), hostname("", errors.New("uname failed")), "subject.common_name is not set and the hostname is unknown: uname failed"},
		"bad mode":    {phaseParams(dir, func(p *Params) { p.Mode = "rw" }), hostname("h", nil), `mode "rw" is not an octal file mode`},
		"bad days":    {phaseParams(dir, func(p *Params) { p.RenewBeforeDays = 400 }), hostname("h", nil), "renew_before_days"},
	} {
		if _, err := resolve(tc.p, tc.host); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// read finds the managed files and the temp files a killed run left beside them; the
// CA file's only when it is managed.
func TestReadPhase(t *testing.T) {
	dir := t.TempDir()
	f := newDecideFixture(t)
	j, err := resolve(phaseParams(dir, nil), hostname("host1", nil))
	if err != nil {
		t.Fatal(err)
	}
	for path, data := range map[string][]byte{
		j.Paths.Cert: f.certPEM, j.Paths.Key: f.keyPEM, j.Paths.CA: f.caPEM,
		filepath.Join(dir, "private", ".clientkey.pem.tmp-77"): f.keyPEM,
		filepath.Join(dir, "CA", ".cacert.pem.tmp-12"):         f.caPEM,
		filepath.Join(dir, ".servercert.pem.tmp-3"):            nil, // another file set's
	} {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, data, j.AttrsOf(path).Mode); err != nil {
			t.Fatal(err)
		}
	}
	found, err := read(j)
	if err != nil {
		t.Fatal(err)
	}
	if string(found.CertPEM) != string(f.certPEM) || found.Key == nil || len(found.CA) != 1 || len(found.PathsWithWrongAttrs) != 0 {
		t.Errorf("found: certificate %v, key %v, CA %d, wrong attributes %v", found.Cert != nil, found.Key != nil, len(found.CA), found.PathsWithWrongAttrs)
	}
	if want := []string{filepath.Join(dir, "CA", ".cacert.pem.tmp-12"), filepath.Join(dir, "private", ".clientkey.pem.tmp-77")}; !slices.Equal(found.Stale, want) {
		t.Errorf("stale %v, want %v", found.Stale, want)
	}
	j.InstallCACert = false
	if found, _ = read(j); len(found.Stale) != 1 || found.CAPEM != nil {
		t.Errorf("CA file not managed: stale %v, CA read %v", found.Stale, found.CAPEM != nil)
	}
}

// apply removes the stale temp files before it writes anything; with nothing decided it
// writes nothing else.
func TestApplyRemovesStaleTempsFirst(t *testing.T) {
	dir := t.TempDir()
	j, err := resolve(phaseParams(dir, nil), hostname("host1", nil))
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, ".clientcert.pem.tmp-9")
	os.WriteFile(stale, []byte("left by a killed run"), 0o600)
	res, err := apply(context.Background(), j, &Found{Current: NewCurrent(nil, nil, nil), Stale: []string{stale}}, Decision{}, nil, time.Now(), nil)
	if err != nil || res.Issued != nil || len(res.Backups) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left %v", left)
	}
}

// report, for each kind of run: converged, check mode (predicted facts and diff), a real
// issue, and a failed one (facts kept, no diff).
func TestReportPhase(t *testing.T) {
	f := newDecideFixture(t)
	j := &Job{Settings: &Settings{Paths: decidePaths, InstallCACert: true, SELinuxNote: "SELinux is not enabled"}, Type: "client", Want: f.want(t, nil)}
	converged := &Found{Current: NewCurrent(f.certPEM, f.keyPEM, f.caPEM)}
	cert := converged.Cert

	r := report(j, converged, Decision{}, nil, false, false, f.now)
	if r.Changed || r.Msg != `client certificate "C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host1" is up to date` ||
		r.Facts["fingerprint"] != Fingerprint(cert) || r.Facts["issuer"] != "O=libvirt.org,CN=test CA" || r.DiffAfter != "" || len(r.Warnings) != 0 {
		t.Errorf("converged: %+v", r)
	}

	missing := &Found{Current: NewCurrent(nil, nil, f.caPEM), Stale: []string{"/pki/libvirt/.clientcert.pem.tmp-1"}}
	d := Decision{Reason: "certificate and key missing", Issue: true}
	r = report(j, missing, d, nil, true, false, f.now)
	if !r.Changed || !strings.HasPrefix(r.Msg, "would issue the client certificate") || r.Facts["fingerprint"] != "" || r.Facts["key"] != "rsa 2048" ||
		r.DiffBefore != "(no certificate)\n" || !strings.Contains(r.DiffAfter, "fingerprint: (new certificate)") {
		t.Errorf("check mode: %+v", r)
	}
	if got := r.Facts["removed_temp_files"].([]string); !slices.Equal(got, missing.Stale) {
		t.Errorf("removed_temp_files %v", got)
	}

	r = report(j, missing, d, &Applied{Issued: cert, Backups: []string{"/b~"}}, false, false, f.now)
	if !r.Changed || !strings.HasPrefix(r.Msg, "issued the client certificate") || r.Facts["serial"] != Serial(cert) ||
		!slices.Equal(r.Facts["backup_files"].([]string), []string{"/b~"}) || !strings.Contains(r.DiffAfter, Fingerprint(cert)) {
		t.Errorf("issued: %+v", r)
	}

	r = report(j, missing, d, &Applied{Backups: []string{"/b~"}}, false, true, f.now)
	if r.DiffAfter != "" || r.Facts["serial"] != nil || r.Facts["backup_files"] == nil {
		t.Errorf("failed: %+v", r)
	}

	// a CA that ends within renew_before: the run warns
	short, want := *j, *j.Want
	want.RenewBefore = 20 * 365 * 24 * time.Hour // the test CA ends in ten years
	short.Want = &want
	if r = report(&short, converged, Decision{}, nil, false, false, f.now); len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "renew the CA") {
		t.Errorf("CA ending soon: warnings %v", r.Warnings)
	}
}
