package ansible

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type demoParams struct {
	Name    string   `ansible:"name"`
	Count   int      `ansible:"count"`
	Enabled bool     `ansible:"enabled"`
	Tags    []string `ansible:"tags"`
	Token   string   `ansible:"token"`
	Clients []struct {
		Name string `ansible:"name"`
		Type string `ansible:"type"`
	} `ansible:"clients"`
	Vault *struct {
		Auth  string `ansible:"auth"`
		Token string `ansible:"token"`
	} `ansible:"vault"`
}

func writeArgs(t *testing.T, args map[string]any) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "args")
	data, _ := json.Marshal(args)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func execDemo(t *testing.T, args map[string]any, run RunFunc[demoParams]) (map[string]any, bool) {
	t.Helper()
	res, failed := Execute(demoDoc, writeArgs(t, args), run)
	// The result must survive a JSON round trip: Main prints exactly this.
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
	return res, failed
}

func TestExecuteDecodesAndReportsFlags(t *testing.T) {
	var got demoParams
	var check, diff bool
	res, failed := execDemo(t, map[string]any{
		"name": "web", "count": "2", "tags": "a,b", "_ansible_check_mode": true, "_ansible_diff": true,
		"clients": []any{map[string]any{"name": "c1"}}, "vault": map[string]any{"auth": "token", "token": "tkn-abcdef"},
		"_ansible_verbosity": 3, "_ansible_tmpdir": "/tmp/x", "_ansible_module_name": "demo",
	}, func(m *Context, p *demoParams) error {
		got, check, diff = *p, m.CheckMode, m.DiffMode
		m.Changed = true
		m.Set("answer", 42)
		m.AddDiff("thing", "old\n", "new\n")
		return nil
	})
	if failed {
		t.Fatalf("failed: %v", res["msg"])
	}
	if !check || !diff || got.Name != "web" || got.Count != 2 || len(got.Tags) != 2 || got.Clients[0].Type != "client" || got.Vault.Token != "tkn-abcdef" {
		t.Fatalf("decoded %+v check=%v diff=%v", got, check, diff)
	}
	if res["changed"] != true || res["answer"] != float64(42) {
		t.Fatalf("result %v", res)
	}
	d := res["diff"].(map[string]any)
	if d["before"] != "old\n" || d["after"] != "new\n" {
		t.Fatalf("diff %v", d)
	}
	inv := res["invocation"].(map[string]any)["module_args"].(map[string]any)
	if inv["vault"].(map[string]any)["token"] != NoLogPlaceholder {
		t.Fatalf("invocation leaks token: %v", inv)
	}
}

func TestDiffOnlyInDiffMode(t *testing.T) {
	res, _ := execDemo(t, map[string]any{"name": "x"}, func(m *Context, p *demoParams) error {
		m.AddDiff("thing", "a", "b")
		return nil
	})
	if _, ok := res["diff"]; ok {
		t.Fatal("diff returned without _ansible_diff")
	}
}

func TestErrorsAndOutputAreMasked(t *testing.T) {
	secret := "hunter2-very-secret"
	res, failed := execDemo(t, map[string]any{"name": "x", "token": secret}, func(m *Context, p *demoParams) error {
		m.Warn("warning mentions %s", p.Token)
		m.Set("echo", map[string]any{"nested": []any{"in " + p.Token}})
		return errors.New("library said: bad token " + p.Token)
	})
	if !failed || res["failed"] != true {
		t.Fatal("want failure")
	}
	out, _ := json.Marshal(res)
	if strings.Contains(string(out), secret) {
		t.Fatalf("secret leaked: %s", out)
	}
	if !strings.Contains(res["msg"].(string), "bad token "+Masked) {
		t.Fatalf("msg = %v", res["msg"])
	}
	if res["echo"] == nil {
		t.Fatal("values set before the error must be returned")
	}
}

func TestValidationErrorMasksNoLogValue(t *testing.T) {
	// A no_log value that fails its own choices check must not be echoed.
	doc := []byte("DOCUMENTATION:\n  module: m\n  options:\n    mode: {type: str, no_log: true, choices: [a, b]}\n")
	res, failed := Execute(doc, writeArgs(t, map[string]any{"mode": "topsecretvalue"}), func(*Context, *struct{}) error { return nil })
	out, _ := json.Marshal(res)
	if !failed || strings.Contains(string(out), "topsecretvalue") {
		t.Fatalf("failed=%v out=%s", failed, out)
	}
}

func TestMultilineSecretFragmentsMasked(t *testing.T) {
	key := "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nAAAABBBBCCCCDDDDEEEEFFFF0000\n-----END PRIVATE KEY-----\n"
	m := &Masker{}
	m.Add(key)
	got := m.String("parse error near MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7")
	if strings.Contains(got, "MIIEvQ") {
		t.Fatalf("fragment leaked: %s", got)
	}
	if m.String("-----END PRIVATE KEY-----") != "-----END PRIVATE KEY-----" {
		t.Fatal("PEM armour lines alone are not secret")
	}
}

func TestUnknownOptionFails(t *testing.T) {
	res, failed := execDemo(t, map[string]any{"name": "x", "nmae": "y"}, func(*Context, *demoParams) error {
		t.Fatal("run must not be called")
		return nil
	})
	if !failed || !strings.Contains(res["msg"].(string), "Unsupported parameters for (demo) module: nmae") {
		t.Fatalf("%v", res)
	}
}

func TestPanicBecomesFailedResult(t *testing.T) {
	res, failed := execDemo(t, map[string]any{"name": "x", "token": "panic-secret-1"}, func(m *Context, p *demoParams) error {
		var nilMap map[string]int
		nilMap[p.Token] = 1 // panics: assignment to entry in nil map
		return nil
	})
	if !failed || !strings.Contains(res["msg"].(string), "module demo crashed") {
		t.Fatalf("%v", res)
	}
	if strings.Contains(res["msg"].(string), "goroutine") {
		t.Fatal("a Go traceback leaked into the result")
	}
}

func TestBadArgsFiles(t *testing.T) {
	run := func(*Context, *demoParams) error { return nil }
	_, failed := Execute(demoDoc, "", run)
	if !failed {
		t.Fatal("no args file must fail")
	}
	_, failed = Execute(demoDoc, filepath.Join(t.TempDir(), "missing"), run)
	if !failed {
		t.Fatal("missing args file must fail")
	}
	p := filepath.Join(t.TempDir(), "args")
	os.WriteFile(p, []byte(`{"name": "x", "token": "abcdefgh-secret`), 0o600)
	res, failed := Execute(demoDoc, p, run)
	if !failed || strings.Contains(res["msg"].(string), "abcdefgh") {
		t.Fatalf("broken JSON: %v", res)
	}
}

// "-" reads the arguments from stdin: the executor's path, where they never touch the disk.
func TestExecuteReadsArgsFromStdin(t *testing.T) {
	old := stdin
	defer func() { stdin = old }()
	stdin = strings.NewReader(`{"name": "web", "_ansible_check_mode": true}`)
	var got demoParams
	var check bool
	res, failed := Execute(demoDoc, "-", func(m *Context, p *demoParams) error {
		got, check = *p, m.CheckMode
		return nil
	})
	if failed || got.Name != "web" || !check {
		t.Fatalf("failed=%v params=%+v check=%v res=%v", failed, got, check, res)
	}
}

// Garbage on stdin fails without quoting it (it may hold secrets).
func TestExecuteStdinNotJSONIsNotQuoted(t *testing.T) {
	old := stdin
	defer func() { stdin = old }()
	stdin = strings.NewReader(`{"token": "s3cr3t-value"`)
	res, failed := Execute(demoDoc, "-", func(*Context, *demoParams) error { return nil })
	msg, _ := res["msg"].(string)
	if !failed || msg != "arguments on stdin is not a JSON object" || strings.Contains(msg, "s3cr3t") {
		t.Fatalf("failed=%v msg=%q", failed, msg)
	}
}

func TestDispatch(t *testing.T) {
	mods := map[string]Module{"incus_trust": nil, "ssh_ca_trust": nil}
	cases := []struct {
		argv       []string
		name, rest string
	}{
		// Ansible's stock binary path: a copy named AnsiballZ_<module>, the args file in argv[1].
		{[]string{"/tmp/ansible-tmp-1/AnsiballZ_incus_trust", "/tmp/ansible-tmp-1/args"}, "incus_trust", "/tmp/ansible-tmp-1/args"},
		// A copy (or link) under the module's own name, as in plugins/modules.
		{[]string{"plugins/modules/ssh_ca_trust", "args"}, "ssh_ca_trust", "args"},
		// The executor: the multi-call binary with the module as the first argument.
		{[]string{"/var/lib/incus-access/bin/incus-access-modules-abc", "ssh_ca_trust", "-"}, "ssh_ca_trust", "-"},
		{[]string{"incus-access-modules", "nope", "-"}, "", ""},
		{[]string{"incus-access-modules"}, "", ""},
		{nil, "", ""},
	}
	for _, c := range cases {
		name, rest := Dispatch(c.argv, mods)
		if name != c.name || strings.Join(rest, " ") != c.rest {
			t.Errorf("Dispatch(%q) = %q %q, want %q %q", c.argv, name, rest, c.name, c.rest)
		}
	}
	if u := Usage([]string{"/x/incus-access-modules-abc"}, mods); !strings.Contains(u, "incus-access-modules-abc MODULE ARGS_FILE") ||
		!strings.Contains(u, "modules: incus_trust, ssh_ca_trust") {
		t.Fatalf("usage: %s", u)
	}
}

// FuzzArgsDecoder feeds arbitrary args files through the whole runtime: it must never
// panic, always produce one JSON object, and never let the no_log value through.
func FuzzArgsDecoder(f *testing.F) {
	f.Add([]byte(`{"name": "web", "count": "3", "token": "fuzz-secret-value"}`))
	f.Add([]byte(`{"name": 1, "clients": [{"name": "a", "type": "metrics"}], "token": "fuzz-secret-value"}`))
	f.Add([]byte(`{"n": "x", "vault": {"auth": "token"}, "token": "fuzz-secret-value"}`))
	f.Add([]byte(`{"name": "x", "labels": "a=1,b", "ports": "22,2222", "token": "fuzz-secret-value"}`))
	f.Add([]byte(`[1,2,3]`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "args")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		res, _ := Execute(demoDoc, p, func(m *Context, d *demoParams) error {
			m.Set("echo", d.Token)
			return nil
		})
		out, err := json.Marshal(res)
		if err != nil {
			t.Fatalf("result not JSON: %v", err)
		}
		if _, ok := res["changed"]; !ok {
			t.Fatalf("result lacks changed: %s", out)
		}
		// Whatever string was given as the no_log option must not appear anywhere.
		var in map[string]any
		if json.Unmarshal(data, &in) == nil {
			if tok, ok := in["token"].(string); ok && len(strings.TrimSpace(tok)) >= 4 && strings.Contains(string(out), tok) {
				t.Fatalf("no_log value %q leaked: %s", tok, out)
			}
		}
	})
}
