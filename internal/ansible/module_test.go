package ansible

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func globSidecars() ([]string, error) {
	return filepath.Glob(filepath.Join("..", "..", "modules", "*", "*.yml"))
}

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
