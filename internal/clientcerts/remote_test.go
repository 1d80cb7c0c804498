package clientcerts

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/incus-access/incus-access/internal/testlab"
)

// labDaemon is one lab incusd: its unix socket (to change its trust store the way an
// operator would) and its HTTPS address (what the workstation talks to).
type labDaemon struct {
	srv        incus.InstanceServer
	addr, port string
	serverFP   string
}

func labDaemonN(t *testing.T, n int) *labDaemon {
	t.Helper()
	l := testlab.Get(t)
	socket, addr := l.Host1Socket, l.Host1Addr
	if n == 2 {
		socket, addr = l.Host2Socket, l.Host2Addr
	}
	if _, err := exec.LookPath("incus"); err != nil {
		t.Skip("the incus CLI is not installed")
	}
	srv, err := incus.ConnectIncusUnix(socket, nil)
	if err != nil {
		t.Fatalf("lab incusd %d: %v", n, err)
	}
	t.Cleanup(srv.Disconnect)
	info, _, err := srv.GetServer()
	if err != nil {
		t.Fatal(err)
	}
	if addr == "" || l.IncusHTTPSPort == "" || info.Config["core.https_address"] == "" {
		t.Fatalf("lab incusd %d has no HTTPS listener (LAB_HOST%d_ADDR / LAB_INCUS_HTTPS_PORT / core.https_address)", n, n)
	}
	pub, err := ParsePublicCertificate([]byte(info.Environment.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	return &labDaemon{srv: srv, addr: addr, port: l.IncusHTTPSPort, serverFP: pub.Fingerprint()}
}

// trust adds the workstation's certificate to the daemon's trust store (as
// host-incus-update would); the store is put back when the test ends.
func (d *labDaemon) trust(t *testing.T, w *workstation, name string, restricted bool, projects ...string) {
	t.Helper()
	cert := parseCert(t, w.read("client.crt"))
	err := d.srv.CreateCertificate(api.CertificatesPost{CertificatePut: api.CertificatePut{
		Name: name, Type: api.CertificateTypeClient, Restricted: restricted, Projects: projects,
		Certificate: base64.StdEncoding.EncodeToString(cert.Raw),
	}})
	if err != nil {
		t.Fatalf("trust %s: %v", name, err)
	}
}

// removeAddedAfter deletes, when the test ends, the trust entries added from now on; for
// a second daemon while RestoreAfter of the first holds the one trust store lock.
func (d *labDaemon) removeAddedAfter(t *testing.T) {
	t.Helper()
	before := map[string]bool{}
	for _, fp := range testlab.IncusTrustedFingerprints(t, d.srv) {
		before[fp] = true
	}
	t.Cleanup(func() {
		for _, fp := range testlab.IncusTrustedFingerprints(t, d.srv) {
			if !before[fp] {
				if err := d.srv.DeleteCertificate(fp); err != nil {
					t.Errorf("remove trust entry %s: %v", fp, err)
				}
			}
		}
	})
}

// incusCLI runs the real incus client with the workstation's INCUS_CONF and nothing
// else from the environment that could pick another remote or project.
func (w *workstation) incusCLI(args ...string) (string, error) {
	w.t.Helper()
	cmd := exec.Command("incus", args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INCUS_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "INCUS_CONF="+w.conf, "HOME="+w.home)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func csvColumn(out string, col int) []string {
	var vals []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Split(line, ","); len(f) > col && line != "" {
			vals = append(vals, f[col])
		}
	}
	sort.Strings(vals)
	return vals
}

// Seed Quick Start steps 1, 6, 7 and 8 against a real incusd: before the certificate is
// deployed add-remote says "not trusted" and the incus CLI is refused; once trusted,
// add-remote says so with the projects, and the incus CLI lists instances through the
// remote it wrote. info's fingerprint is the one `incus config trust list` shows.
func TestLabAddRemoteReportsTrustAndTheIncusCLIUsesTheRemote(t *testing.T) {
	d := labDaemonN(t, 1)
	testlab.RestoreIncusTrustStoreAfter(t, d.srv)
	w := newWorkstation(t)
	name := testlab.UniqueIncusPrefix() + "workstation"
	w.ok("generate", name)

	r := w.ok("add-remote", "lab-one", d.addr, d.port, "--accept-certificate")
	if !strings.Contains(r.stdout, "Trust: not trusted") || strings.Contains(r.stdout, "Trust: trusted") {
		t.Fatalf("before deployment:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, d.serverFP) {
		t.Errorf("add-remote does not show the server's fingerprint %s:\n%s", d.serverFP, r.stdout)
	}
	out, err := w.incusCLI("remote", "list", "-f", "csv")
	if err != nil || !strings.Contains(out, "lab-one,https://"+net.JoinHostPort(d.addr, d.port)+",incus,tls,") {
		t.Fatalf("incus remote list does not show lab-one: %v\n%s", err, out)
	}
	if out, err := w.incusCLI("list", "lab-one:"); err == nil {
		t.Fatalf("an untrusted certificate listed instances:\n%s", out)
	}

	d.trust(t, w, name, false)
	r = w.ok("add-remote", "lab-one", d.addr, d.port, "--fingerprint", OpenSSLFingerprint(d.serverFP))
	if !strings.Contains(r.stdout, "Updated remote lab-one") || !strings.Contains(r.stdout, "Trust: trusted") {
		t.Fatalf("after deployment:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "Projects visible: ") || !strings.Contains(r.stdout, "default") || !strings.Contains(r.stdout, "production") {
		t.Errorf("an unrestricted certificate does not see default and production:\n%s", r.stdout)
	}
	out, err = w.incusCLI("list", "lab-one:", "-c", "n", "-f", "csv")
	if err != nil || !strings.Contains(out, "deb1") {
		t.Fatalf("incus list lab-one: %v\n%s", err, out)
	}

	// info's fingerprint: the full one as the API has it, the short one as the table shows it.
	fp := Fingerprint(parseCert(t, w.read("client.crt")).Raw)
	info := w.ok("info").stdout
	if !strings.Contains(info, "Fingerprint:  "+fp) || !strings.Contains(info, fp[:12]+" in `incus config trust list`") {
		t.Fatalf("info:\n%s", info)
	}
	out, err = w.incusCLI("config", "trust", "list", "lab-one:", "-f", "csv", "-c", "nf")
	if err != nil || !strings.Contains(out, name+","+fp[:12]+"\n") {
		t.Fatalf("incus config trust list does not show %s as %s: %v\n%s", name, fp[:12], err, out)
	}
	out, err = w.incusCLI("config", "trust", "list", "lab-one:", "-f", "json")
	if err != nil {
		t.Fatal(err)
	}
	var entries []api.Certificate
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range entries {
		found = found || e.Name == name && e.Fingerprint == fp
	}
	if !found {
		t.Errorf("no trust entry %s with fingerprint %s in %s", name, fp, out)
	}
}

// A certificate deployed restricted to production sees production only, and the remote
// defaults to it, so `incus list <remote>:` works without --project.
func TestLabRestrictedToProductionSeesOnlyProduction(t *testing.T) {
	d := labDaemonN(t, 1)
	testlab.RestoreIncusTrustStoreAfter(t, d.srv)
	w := newWorkstation(t)
	name := testlab.UniqueIncusPrefix() + "ci-production"
	w.ok("generate", name)
	d.trust(t, w, name, true, "production")

	r := w.ok("add-remote", "prod", d.addr, "--accept-certificate") // port defaults to 8443
	if !strings.Contains(r.stdout, "Trust: trusted") || !strings.Contains(r.stdout, "Projects visible: production\n") ||
		!strings.Contains(r.stdout, "Default project of this remote: production") {
		t.Fatalf("add-remote:\n%s", r.stdout)
	}
	out, err := w.incusCLI("project", "list", "prod:", "-f", "csv", "-c", "n")
	if err != nil {
		t.Fatalf("incus project list prod: %v\n%s", err, out)
	}
	if got := csvColumn(strings.ReplaceAll(out, " (current)", ""), 0); strings.Join(got, ",") != "production" {
		t.Fatalf("projects seen: %v, want only production", got)
	}
	out, err = w.incusCLI("list", "prod:", "-c", "n", "-f", "csv")
	if err != nil || strings.TrimSpace(out) != "deb-prod" {
		t.Fatalf("incus list prod: %v\n%s (want deb-prod alone)", err, out)
	}
	if out, err := w.incusCLI("list", "prod:", "--project", "default"); err == nil {
		t.Fatalf("a production-only certificate listed the default project:\n%s", out)
	}
}

// Both lab daemons as two remotes of one workstation; a pinned fingerprint of the other
// daemon is refused and leaves the configuration as it was.
func TestLabTwoRemotesAndAWrongPinWritesNothing(t *testing.T) {
	d1, d2 := labDaemonN(t, 1), labDaemonN(t, 2)
	testlab.RestoreIncusTrustStoreAfter(t, d1.srv) // holds the trust store lock for both daemons
	d2.removeAddedAfter(t)
	w := newWorkstation(t)
	name := testlab.UniqueIncusPrefix() + "admin"
	w.ok("generate", name)
	d1.trust(t, w, name, false)
	d2.trust(t, w, name, false)

	w.ok("add-remote", "h1", d1.addr, d1.port, "--fingerprint", d1.serverFP)
	before := testlab.Tree(t, w.home)
	assertOneLineFailure(t, w.run("add-remote", "h2", d2.addr, d2.port, "--fingerprint", d1.serverFP), "not the pinned "+d1.serverFP)
	if testlab.Tree(t, w.home) != before {
		t.Fatal("a refused pin changed files")
	}
	w.ok("add-remote", "h2", d2.addr, d2.port, "--fingerprint", d2.serverFP)
	for _, remote := range []string{"h1", "h2"} {
		if out, err := w.incusCLI("list", remote+":", "-c", "n", "-f", "csv"); err != nil {
			t.Fatalf("incus list %s: %v\n%s", remote, err, out)
		}
	}
	r := w.ok("list-remotes")
	for _, want := range []string{"h1 ", "https://" + net.JoinHostPort(d1.addr, d1.port), "h2 ", "https://" + net.JoinHostPort(d2.addr, d2.port),
		filepath.Join(w.conf, "servercerts", "h2.crt")} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list-remotes does not show %q:\n%s", want, r.stdout)
		}
	}
}

// A port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}

// Interactive use: the fingerprint is shown and a "no" (or a wrong fingerprint typed)
// writes nothing. A "yes" goes on to talk to the server, which this one is not.
func TestAddRemoteAsksAboutTheServerCertificate(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	u, _ := url.Parse(tlsSrv.URL)
	host, port, _ := net.SplitHostPort(u.Host)
	fp := Fingerprint(tlsSrv.Certificate().Raw)

	for answer, want := range map[string]string{
		"n\n":                          "not accepted",
		"\n":                           "not accepted",
		"":                             "no answer",
		strings.Repeat("0", 64) + "\n": "not the server's",
	} {
		w := newWorkstation(t)
		w.ok("generate", "laptop")
		w.tty, w.stdin = true, answer
		before := testlab.Tree(t, w.home)
		r := w.run("add-remote", "r", host, port)
		if r.code == 0 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("answer %q: exit %d, stderr %q (want %q)", answer, r.code, r.stderr, want)
		}
		if !strings.Contains(r.stdout, "Certificate fingerprint: "+fp) {
			t.Errorf("answer %q: the question does not show the fingerprint: %q", answer, r.stdout)
		}
		if testlab.Tree(t, w.home) != before {
			t.Errorf("answer %q: files changed", answer)
		}
	}
	// Typing the right fingerprint accepts: the failure is now the server (not Incus).
	w := newWorkstation(t)
	w.ok("generate", "laptop")
	w.tty, w.stdin = true, strings.ToUpper(OpenSSLFingerprint(fp))+"\n"
	r := w.run("add-remote", "r", host, port)
	if r.code == 0 || strings.Contains(r.stderr, "not accepted") || !strings.Contains(r.stderr, "cannot") {
		t.Errorf("typed fingerprint: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(w.conf, "config.yml")); err == nil {
		t.Error("config.yml written although the server is not Incus")
	}
}

func TestChooseProjectAsTheIncusCLIDoes(t *testing.T) {
	for _, c := range []struct {
		visible []string
		want    string
		got     string
	}{
		{[]string{"production"}, "", "production"},
		{[]string{"default", "production"}, "", ""},
		{nil, "", ""},
		{[]string{"staging", "production"}, "", "staging"},
		{[]string{"default", "production"}, "production", "production"},
	} {
		got, err := chooseProject(c.want, &RemoteReport{Trusted: true, Projects: c.visible})
		if err != nil || got != c.got {
			t.Errorf("visible %v, --project %q: got %q, %v; want %q", c.visible, c.want, got, err, c.got)
		}
	}
	if _, err := chooseProject("staging", &RemoteReport{Trusted: true, Projects: []string{"production"}, URL: "https://x:8443"}); err == nil ||
		!strings.Contains(err.Error(), `project "staging" is not visible`) {
		t.Errorf("an invisible --project: %v", err)
	}
}

func TestListRemotesShowsWhatTheIncusCLIKeeps(t *testing.T) {
	w := newWorkstation(t)
	cfg := "default-remote: aoostar\nremotes:\n  aoostar:\n    addr: https://10.10.0.20:8443\n    auth_type: tls\n    project: production\n    protocol: incus\n    public: false\n"
	if err := os.MkdirAll(filepath.Join(w.conf, "servercerts"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(w.conf, "config.yml"), []byte(cfg), 0o644)
	os.WriteFile(filepath.Join(w.conf, "servercerts", "aoostar.crt"), []byte("x"), 0o644)
	r := w.ok("list-remotes")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") { // a config.yml without images: incus has none either
		t.Fatalf("list-remotes:\n%s", r.stdout)
	}
	want := []string{"aoostar (current)", "https://10.10.0.20:8443", "incus", "tls", "production", filepath.Join(w.conf, "servercerts", "aoostar.crt")}
	if got := strings.Fields(strings.Replace(lines[1], " (current)", "_(current)", 1)); strings.Join(got, " ") != strings.Replace(strings.Join(want, " "), " (current)", "_(current)", 1) {
		t.Errorf("aoostar line: %q", lines[1])
	}
	if !strings.HasPrefix(lines[2], "local ") || !strings.Contains(lines[2], "file access") {
		t.Errorf("built-in remotes:\n%s", r.stdout)
	}
	// No config.yml at all: the incus CLI's defaults.
	w2 := newWorkstation(t)
	if r := w2.ok("list-remotes"); !strings.Contains(r.stdout, "local (current)") || !strings.Contains(r.stdout, "images.linuxcontainers.org") {
		t.Errorf("defaults:\n%s", r.stdout)
	}
}
