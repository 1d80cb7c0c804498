package incustrust

import (
	"strings"
	"testing"
	"time"

	"github.com/lxc/incus/v6/shared/api"

	"github.com/incus-access/incus-access/internal/testlab"
)

var allProjects = []string{"default", "production", "staging"}

func stored(name string, c testlab.IncusClientCert, typ string, restricted bool, projects []string, desc string) api.Certificate {
	return api.Certificate{Fingerprint: c.FP, CertificatePut: api.CertificatePut{
		Name: name, Type: typ, Restricted: restricted, Projects: projects, Description: desc, Certificate: c.CertPEM,
	}}
}

func mustDesired(t *testing.T, clients ...Client) []*DesiredClient {
	t.Helper()
	d, _, err := ValidateClients(clients, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustPlan(t *testing.T, desired []*DesiredClient, current []api.Certificate, opts PlanOptions) *TrustPlan {
	t.Helper()
	p, err := NewTrustPlan(desired, current, allProjects, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ops renders a plan as "op name" lines in execution order.
func ops(p *TrustPlan) string {
	var out []string
	for _, it := range p.Items {
		s := string(it.Op) + " " + it.Name
		if it.Method != "" {
			s += " " + it.Method
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func TestPlanCases(t *testing.T) {
	a, b, c, d := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "b"), testlab.NewIncusClientCert(t, "c"), testlab.NewIncusClientCert(t, "d")
	client := func(name string, tc testlab.IncusClientCert) Client {
		return Client{Name: name, Certificate: tc.CertPEM, Type: "client", State: "present", Projects: []string{}}
	}
	restricted := func(cl Client, projects ...string) Client { cl.Restricted = true; cl.Projects = projects; return cl }
	typed := func(cl Client, typ string) Client { cl.Type = typ; return cl }
	absent := func(name string) Client { return Client{Name: name, State: "absent", Type: "client"} }
	crlf := func(tc testlab.IncusClientCert) testlab.IncusClientCert {
		tc.CertPEM = strings.ReplaceAll(tc.CertPEM, "\n", "\r\n") + "\r\n"
		return tc
	}

	cases := []struct {
		name    string
		clients []Client
		current []api.Certificate
		opts    PlanOptions
		want    string
		reason  string // a substring of the first item's reason
	}{
		{"empty store: add", []Client{client("a", a)}, nil, PlanOptions{}, "add a", "not trusted yet"},
		{"converged", []Client{restricted(client("a", a), "production")},
			[]api.Certificate{stored("a", a, "client", true, []string{"production"}, "")}, PlanOptions{}, "", ""},
		{"converged though PEM differs (CRLF)", []Client{client("a", crlf(a))},
			[]api.Certificate{stored("a", a, "client", false, nil, "")}, PlanOptions{}, "", ""},
		{"project order does not matter", []Client{restricted(client("a", a), "staging", "default")},
			[]api.Certificate{stored("a", a, "client", true, []string{"default", "staging"}, "")}, PlanOptions{}, "", ""},
		{"update in place", []Client{restricted(client("a", a), "production")},
			[]api.Certificate{stored("a", a, "client", false, nil, "")}, PlanOptions{}, "update a", "restricted false → true; projects [] → [production]"},
		{"rotation", []Client{client("a", b)},
			[]api.Certificate{stored("a", a, "client", false, nil, "")}, PlanOptions{}, "replace a put", "rotation, " + b.FP[:12] + " replaces " + a.FP[:12]},
		{"rename", []Client{client("a2", a)},
			[]api.Certificate{stored("a", a, "client", false, nil, "")}, PlanOptions{}, "rename a2", `the same certificate is trusted as "a"`},
		{"type change", []Client{typed(client("a", a), "metrics")},
			[]api.Certificate{stored("a", a, "client", false, nil, "")}, PlanOptions{}, "replace a delete+add", "type client → metrics"},
		{"rotation and type change", []Client{typed(client("a", b), "metrics")},
			[]api.Certificate{stored("a", a, "client", false, nil, "")}, PlanOptions{}, "replace a delete+add", "rotation"},
		{"swap of two names", []Client{client("a", b), client("b", a)},
			[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("b", b, "client", false, nil, "")}, PlanOptions{}, "rename a, rename b", "trusted as"},
		{"rename onto a name with an old certificate", []Client{client("a", b)},
			[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("b", b, "client", false, nil, "")}, PlanOptions{}, "rename a, remove a", `trusted as "b"`},
		{"duplicate entries under one name", []Client{client("a", a)},
			[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("a", b, "client", false, nil, "")}, PlanOptions{}, "remove a", `an older certificate of client "a"`},
		{"absent by name", []Client{client("a", a), absent("b")},
			[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("b", b, "client", false, nil, "")}, PlanOptions{}, "remove b", "state is absent"},
		{"absent by certificate under another name", []Client{{Name: "b", State: "absent", Type: "client", Certificate: b.CertPEM}},
			[]api.Certificate{stored("bee", b, "client", false, nil, "")}, PlanOptions{}, "remove bee", "matched by certificate"},
		{"absent and not there", []Client{absent("zz")}, nil, PlanOptions{}, "", ""},
		{"unmanaged stays without prune", []Client{client("a", a)},
			[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("x", c, "client", false, nil, "")}, PlanOptions{}, "", ""},
		{"prune", []Client{client("a", a)},
			[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("x", c, "client", false, nil, "")}, PlanOptions{Prune: true}, "remove x", "not in clients (prune)"},
		{"prune with keep by name and by fingerprint", []Client{client("a", a)},
			[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("x", c, "client", false, nil, ""), stored("y", d, "client", false, nil, ""), stored("z", b, "client", false, nil, "")},
			PlanOptions{Prune: true, Keep: []string{"x", strings.ToUpper(colons(d.FP))}}, "remove z", "prune"},
		{"prune spares protected", []Client{client("a", a)},
			[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("me", c, "client", false, nil, "")},
			PlanOptions{Prune: true, Protected: map[string]string{c.FP: "own"}}, "", ""},
		{"server entries are never touched", []Client{client("a", a)},
			[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("member2", c, "server", false, nil, "")}, PlanOptions{Prune: true}, "", ""},
		{"execution order: add, change, remove", []Client{client("n", d), client("a", b)},
			[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("x", c, "client", false, nil, "")}, PlanOptions{Prune: true}, "add n, replace a put, remove x", "not trusted yet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPlan(t, mustDesired(t, tc.clients...), tc.current, tc.opts)
			if got := ops(p); got != tc.want {
				t.Fatalf("plan = %q, want %q", got, tc.want)
			}
			if tc.reason != "" && !strings.Contains(p.Items[0].Reason, tc.reason) {
				t.Fatalf("reason = %q, want it to contain %q", p.Items[0].Reason, tc.reason)
			}
			// Whatever the plan, afterwards each present client is trusted exactly once,
			// under its name, with its certificate, and no older certificate keeps its name.
			for _, cl := range tc.clients {
				if cl.State == "absent" {
					for _, e := range p.After {
						if e.Name == cl.Name {
							t.Fatalf("absent client %q still trusted after the plan", cl.Name)
						}
					}
					continue
				}
				cert, _ := ParseCertificate(cl.Certificate)
				n := 0
				for _, e := range p.After {
					if e.Name == cl.Name {
						n++
						if e.Fingerprint != cert.Fingerprint || e.Type != cl.Type || !e.Managed {
							t.Fatalf("after the plan %q is %+v", cl.Name, e)
						}
					}
				}
				if n != 1 {
					t.Fatalf("after the plan %q has %d entries", cl.Name, n)
				}
			}
		})
	}
}

func colons(fp string) string {
	var parts []string
	for i := 0; i < len(fp); i += 2 {
		parts = append(parts, fp[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestUnmanagedEntriesWarnWithoutPrune(t *testing.T) {
	a, x, k := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "x"), testlab.NewIncusClientCert(t, "k")
	p := mustPlan(t, mustDesired(t, Client{Name: "a", Certificate: a.CertPEM, Type: "client"}),
		[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("stray", x, "client", false, nil, ""), stored("kept", k, "client", false, nil, "")},
		PlanOptions{Keep: []string{"kept"}})
	if p.Changed() {
		t.Fatalf("without prune nothing is removed: %s", ops(p))
	}
	w := strings.Join(p.Warnings, "\n")
	if !strings.Contains(w, `1 trust entry not managed by this task stays trusted (prune is off)`) || !strings.Contains(w, `"stray" (`+x.FP[:12]+`)`) {
		t.Fatalf("warnings = %q", w)
	}
	if strings.Contains(w, "kept") {
		t.Fatalf("an entry in keep must not be reported: %q", w)
	}
	for _, e := range p.After {
		if e.Managed != (e.Name == "a") {
			t.Fatalf("managed flag wrong: %+v", e)
		}
	}
}

func TestPlanRefusesMissingProject(t *testing.T) {
	a := testlab.NewIncusClientCert(t, "a")
	d := mustDesired(t, Client{Name: "ci-prod", Certificate: a.CertPEM, Type: "client", Restricted: true, Projects: []string{"production", "prod"}})
	_, err := NewTrustPlan(d, nil, allProjects, PlanOptions{})
	if err == nil || !strings.Contains(err.Error(), `client "ci-prod": project "prod" does not exist on this server (it has: default, production, staging)`) {
		t.Fatalf("error = %v", err)
	}
}

func TestPlanRefusesAServerCertificateAsClient(t *testing.T) {
	member := testlab.NewIncusClientCert(t, "member2")
	d := mustDesired(t, Client{Name: "laptop", Certificate: member.CertPEM, Type: "client"})
	_, err := NewTrustPlan(d, []api.Certificate{stored("member2", member, "server", false, nil, "")}, allProjects, PlanOptions{})
	if err == nil || !strings.Contains(err.Error(), `client "laptop": this certificate is trusted as the server (cluster member) certificate "member2"`) {
		t.Fatalf("error = %v", err)
	}
}

func TestExpiryAndAdviceWarnings(t *testing.T) {
	soon := testlab.NewIncusClientCertValid(t, "soon", time.Now().Add(-time.Hour), time.Now().Add(10*24*time.Hour))
	late := testlab.NewIncusClientCert(t, "late")
	oldStray := testlab.NewIncusClientCertValid(t, "stray", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	d := mustDesired(t,
		Client{Name: "soon", Certificate: soon.CertPEM, Type: "client"},
		Client{Name: "late", Certificate: late.CertPEM, Type: "client", Projects: []string{"default"}},
		Client{Name: "nowhere", Certificate: testlab.NewIncusClientCert(t, "n").CertPEM, Type: "client", Restricted: true},
	)
	p := mustPlan(t, d, []api.Certificate{stored("stray", oldStray, "client", false, nil, "")}, PlanOptions{ExpiryWarningDays: 30, Keep: []string{"stray"}})
	w := strings.Join(p.Warnings, "\n")
	for _, want := range []string{
		`client "soon": certificate ` + soon.FP[:12] + ` expires on`,
		`unmanaged trust entry "stray": certificate ` + oldStray.FP[:12] + ` expired on`,
		`client "late": projects are ignored while restricted is false`,
		`client "nowhere": restricted with no projects`,
	} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
	if strings.Contains(w, `client "late": certificate`) {
		t.Errorf("a certificate valid for a year must not warn:\n%s", w)
	}
	p = mustPlan(t, d, nil, PlanOptions{ExpiryWarningDays: 0})
	if strings.Contains(strings.Join(p.Warnings, "\n"), "expires") {
		t.Errorf("expiry_warning_days 0 must not warn: %v", p.Warnings)
	}
}
