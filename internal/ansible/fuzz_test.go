package ansible

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
