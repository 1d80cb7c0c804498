package ansible

import (
	_ "embed"
	"reflect"
	"strings"
	"testing"
)

//go:embed testdata/demo.yml
var demoDoc []byte

func demoSpec(t testing.TB) *Spec {
	t.Helper()
	s, err := ParseSpec(demoDoc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validate(t *testing.T, args map[string]any) (*Validated, error) {
	t.Helper()
	return Validate(demoSpec(t), args)
}

func TestConversions(t *testing.T) {
	cases := []struct {
		typ  string
		in   any
		want any
	}{
		{"str", "x", "x"},
		{"str", int64(5), "5"},
		{"str", true, "True"},
		{"str", 1.5, "1.5"},
		{"bool", "yes", true}, {"bool", "Yes", true}, {"bool", "on", true}, {"bool", "1", true},
		{"bool", "true", true}, {"bool", "t", true}, {"bool", "y", true}, {"bool", int64(1), true},
		{"bool", 1.0, true}, {"bool", true, true},
		{"bool", "no", false}, {"bool", "off", false}, {"bool", "0", false}, {"bool", "False", false},
		{"bool", "f", false}, {"bool", "n", false}, {"bool", int64(0), false}, {"bool", false, false},
		{"int", int64(7), int64(7)}, {"int", "42", int64(42)}, {"int", " 42 ", int64(42)}, {"int", 3.0, int64(3)},
		{"float", "1.5", 1.5}, {"float", int64(2), 2.0},
		{"list", "a,b", []any{"a", "b"}}, {"list", []any{"x"}, []any{"x"}}, {"list", int64(3), []any{"3"}},
		{"dict", `{"a": 1}`, map[string]any{"a": int64(1)}},
		{"dict", "a=1, b=2", map[string]any{"a": "1", "b": "2"}},
		{"dict", map[string]any{"k": "v"}, map[string]any{"k": "v"}},
		{"raw", []any{int64(1), "x"}, []any{int64(1), "x"}},
	}
	for _, c := range cases {
		got, err := convert(c.typ, c.in)
		if err != nil {
			t.Errorf("convert(%s, %#v): %v", c.typ, c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("convert(%s, %#v) = %#v, want %#v", c.typ, c.in, got, c.want)
		}
	}
}

func TestConversionFailures(t *testing.T) {
	cases := []struct {
		typ string
		in  any
	}{
		{"bool", "maybe"}, {"bool", int64(2)}, {"int", "4x"}, {"int", 1.5}, {"int", true},
		{"float", "x"}, {"str", []any{"a"}}, {"str", map[string]any{}}, {"list", true},
		{"dict", "novalue"}, {"dict", `{"broken"`}, {"dict", int64(1)},
	}
	for _, c := range cases {
		if got, err := convert(c.typ, c.in); err == nil {
			t.Errorf("convert(%s, %#v) = %#v, want an error", c.typ, c.in, got)
		}
	}
}

func TestPathExpandsHomeAndVars(t *testing.T) {
	t.Setenv("HOME", "/home/tester")
	t.Setenv("SUBDIR", "conf")
	got, err := convert("path", "~/$SUBDIR/x")
	if err != nil || got != "/home/tester/conf/x" {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestDefaultsAndAliases(t *testing.T) {
	v, err := validate(t, map[string]any{"n": "web", "enabled": "yes", "count": "5"})
	if err != nil {
		t.Fatal(err)
	}
	p := v.Params
	if p["name"] != "web" || p["enabled"] != true || p["count"] != int64(5) || p["state"] != "present" {
		t.Fatalf("params = %#v", p)
	}
	if _, ok := p["token"]; !ok || p["token"] != nil {
		t.Fatalf("absent option must be present as nil: %#v", p["token"])
	}
}

func TestDefaultApplied(t *testing.T) {
	v, err := validate(t, map[string]any{"name": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Params["count"] != int64(3) || v.Params["enabled"] != false {
		t.Fatalf("defaults not applied: %#v", v.Params)
	}
}

func TestValidationErrors(t *testing.T) {
	cases := []struct {
		name string
		args map[string]any
		want string
	}{
		{"unknown", map[string]any{"name": "x", "bogus": 1}, "Unsupported parameters for (demo) module: bogus. Supported parameters include: anything, cert, clients, count"},
		{"missing", map[string]any{}, "missing required arguments: name"},
		{"alias twice", map[string]any{"name": "x", "n": "y"}, "option name is given more than once"},
		{"bad int", map[string]any{"name": "x", "count": "many"}, "argument 'count' is of type str and we were unable to convert to int"},
		{"choice", map[string]any{"name": "x", "state": "gone"}, "value of state must be one of: present, absent, got: gone"},
		{"list choice", map[string]any{"name": "x", "ports": []any{int64(22), int64(80)}}, "value of ports[1] must be one of: 22, 2222, got: 80"},
		{"list elem", map[string]any{"name": "x", "ports": []any{"ssh"}}, "elements value for option 'ports[0]' is of type str and we were unable to convert to int"},
		{"sub missing", map[string]any{"name": "x", "clients": []any{map[string]any{"name": "a"}, map[string]any{"type": "client"}}}, "missing required arguments: name found in clients[1]"},
		{"sub unknown", map[string]any{"name": "x", "clients": []any{map[string]any{"name": "a", "colour": "red"}}}, "Unsupported parameters for (demo) module: clients[0].colour."},
		{"sub choice", map[string]any{"name": "x", "clients": []any{map[string]any{"name": "a", "type": "admin"}}}, "value of clients[0].type must be one of: client, metrics, got: admin"},
		{"mutually exclusive", map[string]any{"name": "x", "socket": "/s", "url": "https://h"}, "parameters are mutually exclusive: socket|url"},
		{"together", map[string]any{"name": "x", "url": "https://h", "cert": "c"}, "parameters are required together: url, cert, key"},
		{"required_if top", map[string]any{"name": "x", "state": "absent", "count": nil}, ""},
		{"required_if sub", map[string]any{"name": "x", "vault": map[string]any{"auth": "approle", "role_id": "r"}}, "auth is approle but all of the following are missing: secret_id found in vault"},
		{"dict not dict", map[string]any{"name": "x", "vault": "nonsense"}, "argument 'vault' is of type str and we were unable to convert to dict"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := validate(t, c.args)
			if c.want == "" {
				// count has a default, so required_if [state, absent, [count]] holds.
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestNoLogInInvocationAndSecrets(t *testing.T) {
	v, err := validate(t, map[string]any{
		"name": "x", "token": "s3cr3t-token",
		"clients": []any{map[string]any{"name": "a", "secret": "client-secret"}},
		"vault":   map[string]any{"auth": "token", "token": "vault-token"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if v.Invocation["token"] != NoLogPlaceholder {
		t.Fatalf("token in invocation: %#v", v.Invocation["token"])
	}
	c := v.Invocation["clients"].([]any)[0].(map[string]any)
	if c["secret"] != NoLogPlaceholder || c["name"] != "a" {
		t.Fatalf("client in invocation: %#v", c)
	}
	if vt := v.Invocation["vault"].(map[string]any); vt["token"] != NoLogPlaceholder || vt["auth"] != "token" {
		t.Fatalf("vault in invocation: %#v", vt)
	}
	for _, want := range []string{"s3cr3t-token", "client-secret", "vault-token"} {
		found := false
		for _, s := range v.Secrets {
			found = found || s == want
		}
		if !found {
			t.Errorf("secret %q not collected: %v", want, v.Secrets)
		}
	}
	// The params themselves keep the real value: the module needs it.
	if v.Params["token"] != "s3cr3t-token" {
		t.Fatal("params must keep the real no_log value")
	}
}

func TestSecretsCollectedEvenWhenInvalid(t *testing.T) {
	v, err := validate(t, map[string]any{"name": "x", "token": "tok-123456", "state": "bogus"})
	if err == nil {
		t.Fatal("want error")
	}
	if len(v.Secrets) != 1 || v.Secrets[0] != "tok-123456" {
		t.Fatalf("secrets = %v", v.Secrets)
	}
}
