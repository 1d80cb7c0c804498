package clientcerts

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/testlab"
)

// workstation is a temporary home with INCUS_CONF at ~/.config/incus, as on a real one.
type workstation struct {
	t     *testing.T
	home  string
	conf  string
	stdin string
	tty   bool
	now   time.Time
	extra map[string]string // more environment variables
}

func newWorkstation(t *testing.T) *workstation {
	t.Helper()
	home := t.TempDir()
	return &workstation{t: t, home: home, conf: filepath.Join(home, ".config", "incus"),
		now: time.Now(), extra: map[string]string{}}
}

// result is one run of the program.
type result struct {
	code           int
	stdout, stderr string
}

func (w *workstation) run(args ...string) result {
	w.t.Helper()
	var out, errb bytes.Buffer
	env := Env{
		Getenv: func(k string) string {
			switch k {
			case "HOME":
				return w.home
			case "INCUS_CONF":
				return w.conf
			}
			return w.extra[k]
		},
		Stdin: strings.NewReader(w.stdin), Stdout: &out, Stderr: &errb,
		Interactive: w.tty, Now: func() time.Time { return w.now },
	}
	code := Main(args, env)
	return result{code, out.String(), errb.String()}
}

// ok runs and fails the test unless the exit status is 0.
func (w *workstation) ok(args ...string) result {
	w.t.Helper()
	r := w.run(args...)
	if r.code != 0 {
		w.t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

func (w *workstation) read(rel string) []byte {
	w.t.Helper()
	data, err := os.ReadFile(filepath.Join(w.conf, rel))
	if err != nil {
		w.t.Fatal(err)
	}
	return data
}

// assertOneLineFailure: exit status not 0, exactly one line on stderr naming want, nothing on stdout.
func assertOneLineFailure(t *testing.T, r result, want string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("exit 0, want a failure\nstdout: %s", r.stdout)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasSuffix(r.stderr, "\n") || !strings.HasPrefix(r.stderr, Program+": ") {
		t.Fatalf("stderr is not one line starting %q: %q", Program+": ", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr %q does not say %q", r.stderr, want)
	}
	if r.stdout != "" {
		t.Fatalf("a failure printed on stdout: %q", r.stdout)
	}
}

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
			before := testlab.Tree(t, w.home)
			assertOneLineFailure(t, w.run(c.args...), c.want)
			if after := testlab.Tree(t, w.home); after != before {
				t.Fatalf("files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}
