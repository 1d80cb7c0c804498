package clientcerts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
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

// tree is every file and directory under root with its mode and content digest: two
// trees compare equal when nothing was written, created, removed or chmod-ed.
func tree(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		line := strings.TrimPrefix(p, root) + " " + st.Mode().String()
		if st.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			line += " " + hex.EncodeToString(sum[:8])
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
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
