package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/testlab"
)

func TestMain(m *testing.M) { testlab.ModuleMain(m) }

// runModule runs the built incus_trust binary as Ansible does.
func runModule(t *testing.T, args map[string]any) (map[string]any, string) {
	t.Helper()
	return testlab.RunModule(t, "incus_trust", args)
}

func client(name string, c testlab.IncusClientCert, extra ...any) map[string]any {
	m := map[string]any{"name": name, "certificate": c.CertPEM}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

// client_key is no_log: the invocation shows the placeholder and not one line of the key
// leaves the process, even when the connection fails and the error comes from a library.
func TestBinaryMasksClientKey(t *testing.T) {
	c := testlab.NewIncusClientCert(t, "operator")
	res, out := runModule(t, map[string]any{
		"url": "https://127.0.0.1:1", "client_cert": c.CertPEM, "client_key": c.KeyPEM,
		"clients": []any{},
	})
	if res["failed"] != true || !strings.Contains(testlab.Msg(res), "cannot reach Incus at https://127.0.0.1:1") {
		t.Fatalf("result: %s", out)
	}
	inv := res["invocation"].(map[string]any)["module_args"].(map[string]any)
	if inv["client_key"] != ansible.NoLogPlaceholder {
		t.Fatalf("client_key in invocation: %v", inv["client_key"])
	}
	if strings.Contains(out, c.KeyLine()) || strings.Contains(out, "PRIVATE KEY-----\\n") {
		t.Fatalf("the private key leaked: %s", out)
	}
}

// A private key pasted into a certificate fails before any connection, names the client,
// and is masked everywhere, the echoed invocation included.
func TestBinaryPrivateKeyInCertificateIsNeverEchoed(t *testing.T) {
	c := testlab.NewIncusClientCert(t, "ci")
	res, out := runModule(t, map[string]any{
		"socket":  "/nonexistent/unix.socket",
		"clients": []any{map[string]any{"name": "ci-prod", "certificate": c.CertPEM + c.KeyPEM}},
	})
	if res["failed"] != true || !strings.Contains(testlab.Msg(res), `client "ci-prod": certificate: contains a PRIVATE KEY block (not shown)`) {
		t.Fatalf("result: %s", out)
	}
	if strings.Contains(testlab.Msg(res), "unix.socket") {
		t.Fatalf("input must be validated before connecting: %s", testlab.Msg(res))
	}
	if strings.Contains(out, c.KeyLine()) {
		t.Fatalf("the private key leaked: %s", out)
	}
}

func TestBinarySpecRules(t *testing.T) {
	c := testlab.NewIncusClientCert(t, "x")
	cases := map[string]struct {
		args map[string]any
		want string
	}{
		"url needs cert and key":    {map[string]any{"clients": []any{}, "url": "https://h:8443", "client_cert": c.CertPEM}, "parameters are required together: url, client_cert, client_key"},
		"socket or url":             {map[string]any{"clients": []any{}, "url": "https://h:8443", "socket": "/s", "client_cert": "a", "client_key": "b"}, "parameters are mutually exclusive: socket|url"},
		"present needs certificate": {map[string]any{"clients": []any{map[string]any{"name": "a"}}}, "state is present but all of the following are missing: certificate found in clients[0]"},
		"type choices":              {map[string]any{"clients": []any{client("a", c, "type", "server")}}, "value of clients[0].type must be one of: client, metrics, got: server"},
		"clients required":          {map[string]any{}, "missing required arguments: clients"},
		"unknown option":            {map[string]any{"clients": []any{}, "purge": true}, "Unsupported parameters for (incus_trust) module: purge"},
	}
	for name, tc := range cases {
		res, out := runModule(t, tc.args)
		if res["failed"] != true || !strings.Contains(testlab.Msg(res), tc.want) {
			t.Errorf("%s: %s", name, out)
		}
	}
}

func TestBinaryUnreachableSocketNamesPath(t *testing.T) {
	c := testlab.NewIncusClientCert(t, "x")
	res, out := runModule(t, map[string]any{"socket": "/run/no-incus/unix.socket", "clients": []any{client("a", c)}})
	if res["failed"] != true || !strings.Contains(testlab.Msg(res), "cannot reach Incus: unix socket /run/no-incus/unix.socket") {
		t.Fatalf("result: %s", out)
	}
}

func names(list any) []string {
	var out []string
	for _, e := range list.([]any) {
		out = append(out, e.(map[string]any)["name"].(string))
	}
	return out
}

// Check mode reports the change and writes nothing; the real run makes it; the next run
// changes nothing; diff shows before and after; the audit lists every entry.
func TestLabBinaryCheckApplyConverge(t *testing.T) {
	srv, socket := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	admin, ci := testlab.NewIncusClientCert(t, "admin"), testlab.NewIncusClientCert(t, "ci")
	args := map[string]any{
		"socket": socket,
		"clients": []any{
			client(pre+"admin", admin, "description", "admin"),
			client(pre+"ci", ci, "restricted", true, "projects", []any{"production"}),
		},
		"_ansible_check_mode": true, "_ansible_diff": true,
	}
	before := testlab.IncusTrustState(t, srv)
	res, out := runModule(t, args)
	if res["changed"] != true || len(res["added"].([]any)) != 2 || testlab.IncusTrustState(t, srv) != before {
		t.Fatalf("check mode: store changed=%v, result %s", testlab.IncusTrustState(t, srv) != before, out)
	}
	for _, op := range res["operations"].([]any) {
		if op.(map[string]any)["status"] != "planned" {
			t.Fatalf("check mode operation not planned: %v", op)
		}
	}
	diff := res["diff"].(map[string]any)
	if !strings.Contains(diff["after"].(string), ci.FP) || strings.Contains(diff["before"].(string), ci.FP) {
		t.Fatalf("diff: %v", diff)
	}

	args["_ansible_check_mode"] = false
	res, out = runModule(t, args)
	if res["changed"] != true || strings.Join(names(res["added"]), ",") != pre+"admin,"+pre+"ci" {
		t.Fatalf("real run: %s", out)
	}
	if _, ok := testlab.IncusTrustStore(t, srv)[ci.FP]; !ok {
		t.Fatal("ci not trusted after the real run")
	}
	audit := map[string]map[string]any{}
	for _, e := range res["certificates"].([]any) {
		audit[e.(map[string]any)["name"].(string)] = e.(map[string]any)
	}
	if a := audit[pre+"ci"]; a == nil || a["managed"] != true || a["fingerprint"] != ci.FP || a["restricted"] != true || a["not_after"] == "" {
		t.Fatalf("audit entry for ci: %v", a)
	}
	if len(audit) != len(testlab.IncusTrustStore(t, srv)) {
		t.Fatalf("the audit lists %d entries, the server has %d", len(audit), len(testlab.IncusTrustStore(t, srv)))
	}

	res, out = runModule(t, args)
	if res["changed"] != false || len(res["operations"].([]any)) != 0 || !strings.Contains(testlab.Msg(res), "up to date") {
		t.Fatalf("second run: %s", out)
	}
}

// Every bad input fails once with a message naming the client, and the trust store is
// exactly as before, although the same list also holds a valid new client.
func TestLabBinaryBadInputsChangeNothing(t *testing.T) {
	srv, socket := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	valid := client(pre+"valid", testlab.NewIncusClientCert(t, "valid"))
	c := testlab.NewIncusClientCert(t, "c")
	expired := testlab.NewIncusClientCertValid(t, "old", mustTime(t, "2020-01-01T00:00:00Z"), mustTime(t, "2021-01-01T00:00:00Z"))
	future := testlab.NewIncusClientCertValid(t, "new", mustTime(t, "2099-01-01T00:00:00Z"), mustTime(t, "2100-01-01T00:00:00Z"))
	cases := map[string]struct {
		bad  []any
		want string
	}{
		"not a certificate": {[]any{map[string]any{"name": pre + "junk", "certificate": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"}}, `client "` + pre + `junk": certificate: is not a valid X.509 certificate`},
		"private key":       {[]any{map[string]any{"name": pre + "leaky", "certificate": c.CertPEM + c.KeyPEM}}, `client "` + pre + `leaky": certificate: contains a PRIVATE KEY block`},
		"expired":           {[]any{client(pre+"old", expired)}, `client "` + pre + `old": certificate (fingerprint ` + expired.FP[:12] + `) expired on 2021-01-01`},
		"not yet valid":     {[]any{client(pre+"new", future)}, `client "` + pre + `new": certificate (fingerprint ` + future.FP[:12] + `) is not valid before 2099-01-01`},
		"duplicate names":   {[]any{client(pre+"dup", c), client(pre+"dup", testlab.NewIncusClientCert(t, "d2"))}, `client "` + pre + `dup": the name is given twice`},
		"same certificate":  {[]any{client(pre+"one", c), client(pre+"two", c)}, `client "` + pre + `two": the same certificate`},
		"unknown project":   {[]any{client(pre+"ci", c, "restricted", true, "projects", []any{"production", "qa"})}, `client "` + pre + `ci": project "qa" does not exist on this server`},
	}
	for name, tc := range cases {
		before := testlab.IncusTrustState(t, srv)
		res, out := runModule(t, map[string]any{"socket": socket, "clients": append([]any{valid}, tc.bad...), "prune": false})
		if res["failed"] != true || !strings.Contains(testlab.Msg(res), tc.want) || !strings.Contains(testlab.Msg(res), "nothing was changed") {
			t.Errorf("%s: %s", name, out)
		}
		if res["changed"] != false {
			t.Errorf("%s: changed is %v", name, res["changed"])
		}
		if testlab.IncusTrustState(t, srv) != before {
			t.Errorf("%s: the trust store changed", name)
		}
		if strings.Contains(out, c.KeyLine()) {
			t.Errorf("%s: the private key leaked", name)
		}
	}
}

// Without prune an entry the list does not name stays, and the run warns about it.
func TestLabBinaryWarnsAboutUnmanagedEntries(t *testing.T) {
	srv, socket := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	testlab.TrustIncusClient(t, srv, pre+"out-of-band", testlab.NewIncusClientCert(t, "oob"))
	res, out := runModule(t, map[string]any{"socket": socket, "clients": []any{client(pre+"a", testlab.NewIncusClientCert(t, "a"))}})
	warnings, _ := json.Marshal(res["warnings"])
	if res["failed"] == true || !strings.Contains(string(warnings), `not managed by this task stay`) || !strings.Contains(string(warnings), pre+"out-of-band") {
		t.Fatalf("result: %s", out)
	}
	if len(res["removed"].([]any)) != 0 {
		t.Fatalf("removed without prune: %s", out)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
