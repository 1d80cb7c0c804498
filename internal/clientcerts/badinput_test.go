package clientcerts

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every bad input: exit status not 0, one line on stderr that names the problem, and
// not a byte written, created or removed anywhere under the home directory.
func TestBadInputFailsInOneLineAndWritesNothing(t *testing.T) {
	// A TLS server that is not the one pinned (its certificate is what matters here).
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	u, _ := url.Parse(tlsSrv.URL)
	tlsHost, tlsPort, _ := net.SplitHostPort(u.Host)
	closed := closedPort(t)
	otherFP := strings.Repeat("ab", 32)

	type setup func(w *workstation)
	withPair := func(w *workstation) { w.ok("generate", "laptop") }
	write := func(rel, content string) setup {
		return func(w *workstation) {
			p := filepath.Join(w.home, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	both := func(a, b setup) setup { return func(w *workstation) { a(w); b(w) } }
	keyOnly := func(w *workstation) {
		w.ok("generate", "laptop")
		key := w.read("client.key")
		if err := os.WriteFile(filepath.Join(w.conf, "client.crt"), key, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	inv := func(content string) setup { return write("inv/hosts.yaml", content) }

	cases := []struct {
		name  string
		setup setup
		args  []string
		want  string
	}{
		{"no command", nil, nil, "no command given"},
		{"unknown command", nil, []string{"genrate", "x"}, `unknown command "genrate"`},
		{"help with argument", nil, []string{"help", "me"}, "help takes no arguments"},
		{"generate without name", nil, []string{"generate"}, "missing argument"},
		{"generate two names", nil, []string{"generate", "a", "b"}, `unexpected argument "b"`},
		{"generate bad name", nil, []string{"generate", "../evil"}, `client name "../evil"`},
		{"generate zero days", nil, []string{"generate", "x", "--days", "0"}, "validity of 0 days"},
		{"generate days not a number", nil, []string{"generate", "x", "--days", "ten"}, "--days"},
		{"generate unknown flag", nil, []string{"generate", "x", "--forse"}, "forse"},
		{"generate over existing", withPair, []string{"generate", "laptop"}, "already exists"},
		{"backup without pair", nil, []string{"backup"}, "client.crt: no such file"},
		{"backup with argument", withPair, []string{"backup", "now"}, "unexpected argument"},
		{"extract without pair", nil, []string{"extract"}, "client.crt: no such file"},
		{"extract a key file", keyOnly, []string{"extract"}, "holds a private key but no certificate"},
		{"extract a text file", write(".config/incus/client.crt", "hello\n"), []string{"extract"}, "is not a PEM certificate"},
		{"extract two certificates", nil, nil, ""}, // filled below
		{"info garbage", write(".config/incus/client.crt", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []string{"info"}, "is not a valid X.509 certificate"},
		{"info unreadable", write(".config/incus/client.crt/x", ""), []string{"info"}, "client.crt"},
		{"add-remote no address", withPair, []string{"add-remote", "r"}, "missing argument"},
		{"add-remote bad port", withPair, []string{"add-remote", "r", "127.0.0.1", "84430"}, `port "84430"`},
		{"add-remote local", withPair, []string{"add-remote", "local", "127.0.0.1"}, `remote name "local"`},
		{"add-remote colon", withPair, []string{"add-remote", "a:b", "127.0.0.1"}, `remote name "a:b"`},
		{"add-remote url as address", withPair, []string{"add-remote", "r", "https://h:8443"}, `address "https://h:8443"`},
		{"add-remote short pin", withPair, []string{"add-remote", "r", "127.0.0.1", "--fingerprint", "abc"}, `fingerprint "abc"`},
		{"add-remote accept and pin", withPair, []string{"add-remote", "r", "127.0.0.1", "--accept-certificate", "--fingerprint", otherFP}, "not both"},
		{"add-remote without pair", nil, []string{"add-remote", "r", tlsHost, tlsPort, "--accept-certificate"}, "client.crt: no such file"},
		{"add-remote unreachable", withPair, []string{"add-remote", "r", "127.0.0.1", closed, "--accept-certificate"}, "cannot reach https://127.0.0.1:" + closed},
		{"add-remote pin mismatch", withPair, []string{"add-remote", "r", tlsHost, tlsPort, "--fingerprint", otherFP}, "not the pinned " + otherFP},
		{"add-remote unaccepted", withPair, []string{"add-remote", "r", tlsHost, tlsPort}, "must be accepted"},
		{"add-remote existing name elsewhere", both(withPair, write(".config/incus/config.yml", "remotes:\n  r:\n    addr: https://10.0.0.1:8443\n    protocol: incus\n")),
			[]string{"add-remote", "r", tlsHost, tlsPort, "--accept-certificate"}, `remote "r" already exists as https://10.0.0.1:8443`},
		{"add-remote broken config", both(withPair, write(".config/incus/config.yml", "remotes: [\n")), []string{"add-remote", "r", tlsHost, tlsPort, "--accept-certificate"}, "config.yml"},
		{"list-remotes broken config", write(".config/incus/config.yml", "remotes: {a: [}\n"), []string{"list-remotes"}, "Unable to decode the configuration"},
		{"add-to-inventory no file", withPair, []string{"add-to-inventory", "nope.yaml"}, "nope.yaml: no such file"},
		{"add-to-inventory not yaml", both(withPair, inv("all: [\n")), []string{"add-to-inventory", "inv/hosts.yaml"}, "is not YAML"},
		{"add-to-inventory no all.vars", both(withPair, inv("incus:\n  hosts:\n    h:\n")), []string{"add-to-inventory", "inv/hosts.yaml"}, "has no `all:` mapping"},
		{"add-to-inventory restricted without project", both(withPair, inv("all:\n  vars:\n    x: 1\n")), []string{"add-to-inventory", "inv/hosts.yaml", "--restricted"}, "--restricted without --project"},
		{"add-to-inventory list is a string", both(withPair, inv("all:\n  vars:\n    incus_trusted_clients: nobody\n")), []string{"add-to-inventory", "inv/hosts.yaml"}, "is not a list"},
		{"add-to-inventory name taken", both(withPair, inv("all:\n  vars:\n    incus_trusted_clients:\n      - name: laptop\n        certificate_file: other.crt\n")),
			[]string{"add-to-inventory", "inv/hosts.yaml"}, `client "laptop" is already incus_trusted_clients[0]`},
	}
	// Two certificates in client.crt: someone pasted a second one.
	for i := range cases {
		if cases[i].name == "extract two certificates" {
			cases[i].setup = func(w *workstation) {
				w.ok("generate", "a")
				first := w.read("client.crt")
				w.ok("generate", "b", "--force")
				if err := os.WriteFile(filepath.Join(w.conf, "client.crt"), append(first, w.read("client.crt")...), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cases[i].args, cases[i].want = []string{"extract"}, "holds 2 certificates"
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorkstation(t)
			if c.setup != nil {
				c.setup(w)
			}
			if c.args != nil && len(c.args) > 1 && strings.HasPrefix(c.args[1], "inv/") {
				c.args = append([]string{c.args[0], filepath.Join(w.home, c.args[1])}, c.args[2:]...)
			}
			before := tree(t, w.home)
			assertOneLineFailure(t, w.run(c.args...), c.want)
			if after := tree(t, w.home); after != before {
				t.Fatalf("files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
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
		before := tree(t, w.home)
		r := w.run("add-remote", "r", host, port)
		if r.code == 0 || !strings.Contains(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("answer %q: exit %d, stderr %q (want %q)", answer, r.code, r.stderr, want)
		}
		if !strings.Contains(r.stdout, "Certificate fingerprint: "+fp) {
			t.Errorf("answer %q: the question does not show the fingerprint: %q", answer, r.stdout)
		}
		if tree(t, w.home) != before {
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
