package incustrust

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/incus-access/incus-access/internal/testlab"
)

// reconcile is what the module does, minus Ansible: validate, plan, apply.
func reconcile(t *testing.T, srv incus.InstanceServer, clients []Client, opts PlanOptions) *TrustPlan {
	t.Helper()
	plan := planOnly(t, srv, clients, opts)
	if err := plan.Apply(srv); err != nil {
		t.Fatalf("apply: %v", err)
	}
	return plan
}

// planOnly is the check-mode half: validate and plan.
func planOnly(t *testing.T, srv incus.InstanceServer, clients []Client, opts PlanOptions) *TrustPlan {
	t.Helper()
	desired, _, err := ValidateClients(clients, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Plan(srv, desired, opts)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func entryNamed(t *testing.T, srv incus.InstanceServer, name string) []api.Certificate {
	t.Helper()
	var out []api.Certificate
	for _, c := range testlab.IncusTrustStore(t, srv) {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

func requireGone(t *testing.T, srv incus.InstanceServer, fp string) {
	t.Helper()
	_, _, err := srv.GetCertificate(fp)
	if !api.StatusErrorCheck(err, http.StatusNotFound) {
		t.Fatalf("certificate %s should no longer be trusted; GET says: %v", fp[:12], err)
	}
}

// The seed's four scenarios: planned as adds, applied with every field right, and then
// converged, also when the same certificates come back in another PEM form.
func TestLabScenariosPlanApplyConverge(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	admin, ci, dev, auto := testlab.NewIncusClientCert(t, "admin"), testlab.NewIncusClientCert(t, "ci"), testlab.NewIncusClientCert(t, "dev"), testlab.NewIncusClientCert(t, "auto")
	clients := []Client{
		{Name: pre + "workstation-admin", Description: "admin workstation", Certificate: admin.CertPEM, Type: "client", Projects: []string{}},
		{Name: pre + "ci-production", Description: "CI pipeline", Certificate: ci.CertPEM, Type: "client", Restricted: true, Projects: []string{"production"}},
		{Name: pre + "dev-alice", Description: "developer", Certificate: dev.CertPEM, Type: "client", Restricted: true, Projects: []string{"default"}},
		{Name: pre + "automation", Description: "scripts", Certificate: auto.CertPEM, Type: "client", Restricted: true, Projects: []string{"default", "staging", "production"}},
	}
	plan := reconcile(t, srv, clients, PlanOptions{})
	if got := ops(plan); got != fmt.Sprintf("add %sautomation, add %sci-production, add %sdev-alice, add %sworkstation-admin", pre, pre, pre, pre) {
		t.Fatalf("plan = %s", got)
	}
	for _, it := range plan.Items {
		if it.Status != StatusApplied {
			t.Fatalf("%s: status %s", it.Name, it.Status)
		}
	}
	byName := map[string]api.Certificate{}
	for _, c := range testlab.IncusTrustStore(t, srv) {
		byName[c.Name] = c
	}
	for _, c := range clients {
		got, ok := byName[c.Name]
		cert, _ := ParseCertificate(c.Certificate)
		if !ok || got.Fingerprint != cert.Fingerprint || got.Restricted != c.Restricted || got.Description != c.Description ||
			strings.Join(sorted(got.Projects), ",") != strings.Join(sorted(c.Projects), ",") || got.Type != "client" {
			t.Fatalf("%s on the server: %+v", c.Name, got)
		}
	}
	// Converged: the same list plans nothing, and so does the list in CRLF / one-line PEM.
	if p := planOnly(t, srv, clients, PlanOptions{}); p.Changed() {
		t.Fatalf("second plan is not empty: %s", ops(p))
	}
	reencoded := make([]Client, len(clients))
	copy(reencoded, clients)
	reencoded[0].Certificate = strings.ReplaceAll(clients[0].Certificate, "\n", "\r\n")
	reencoded[1].Certificate = "  " + strings.TrimSpace(clients[1].Certificate) + "  \n\n"
	reencoded[2].Projects = []string{"default"}
	reencoded[3].Projects = []string{"staging", "production", "default"}
	if p := planOnly(t, srv, reencoded, PlanOptions{}); p.Changed() {
		t.Fatalf("PEM form or project order caused a change: %s", ops(p))
	}
}

func TestLabUpdateInPlace(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	name := testlab.UniqueIncusPrefix() + "ci"
	c := testlab.NewIncusClientCert(t, "ci")
	reconcile(t, srv, []Client{{Name: name, Certificate: c.CertPEM, Type: "client", Projects: []string{}}}, PlanOptions{})
	want := Client{Name: name, Description: "now restricted", Certificate: c.CertPEM, Type: "client", Restricted: true, Projects: []string{"production", "staging"}}
	plan := reconcile(t, srv, []Client{want}, PlanOptions{})
	if ops(plan) != "update "+name || !strings.Contains(plan.Items[0].Reason, "restricted false → true") {
		t.Fatalf("plan = %s (%s)", ops(plan), plan.Items[0].Reason)
	}
	got, _, err := srv.GetCertificate(c.FP)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Restricted || got.Description != "now restricted" || strings.Join(sorted(got.Projects), ",") != "production,staging" {
		t.Fatalf("after update: %+v", got)
	}
}

// Rotation: the same name with a new certificate. Afterwards the old fingerprint is not in
// the trust store, and (when the lab serves HTTPS) the old key is no longer let in.
func TestLabRotationRevokesOldCertificate(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	name := testlab.UniqueIncusPrefix() + "rotating"
	old, cur := testlab.NewIncusClientCert(t, "v1"), testlab.NewIncusClientCert(t, "v2")
	reconcile(t, srv, []Client{{Name: name, Description: "d", Certificate: old.CertPEM, Type: "client", Restricted: true, Projects: []string{"staging"}}}, PlanOptions{})
	https := labHTTPS(t, srv)
	if https != nil {
		if auth := https.auth(t, old); auth != "trusted" {
			t.Fatalf("before rotation the old certificate should be trusted over HTTPS, auth = %s", auth)
		}
	}
	plan := reconcile(t, srv, []Client{{Name: name, Description: "d", Certificate: cur.CertPEM, Type: "client", Restricted: true, Projects: []string{"staging"}}}, PlanOptions{})
	if ops(plan) != "replace "+name+" put" || plan.Items[0].OldFingerprint != old.FP {
		t.Fatalf("plan = %s", ops(plan))
	}
	requireGone(t, srv, old.FP)
	entries := entryNamed(t, srv, name)
	if len(entries) != 1 || entries[0].Fingerprint != cur.FP || !entries[0].Restricted || entries[0].Projects[0] != "staging" {
		t.Fatalf("after rotation %s is %+v", name, entries)
	}
	if https == nil {
		t.Log("HTTPS part not checked: " + httpsMissing)
		return
	}
	if auth := https.auth(t, old); auth != "untrusted" {
		t.Fatalf("after rotation the old certificate still gets auth %q over HTTPS", auth)
	}
	if auth := https.auth(t, cur); auth != "trusted" {
		t.Fatalf("after rotation the new certificate gets auth %q over HTTPS", auth)
	}
}

func TestLabRename(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	c := testlab.NewIncusClientCert(t, "r")
	reconcile(t, srv, []Client{{Name: pre + "old-name", Certificate: c.CertPEM, Type: "client"}}, PlanOptions{})
	plan := reconcile(t, srv, []Client{{Name: pre + "new-name", Certificate: c.CertPEM, Type: "client"}}, PlanOptions{})
	if ops(plan) != "rename "+pre+"new-name" || plan.Items[0].OldName != pre+"old-name" {
		t.Fatalf("plan = %s", ops(plan))
	}
	got, _, err := srv.GetCertificate(c.FP)
	if err != nil || got.Name != pre+"new-name" {
		t.Fatalf("after rename: %+v, %v", got, err)
	}
	if len(entryNamed(t, srv, pre+"old-name")) != 0 {
		t.Fatal("the old name is still in the trust store")
	}
}

func TestLabTypeChangeDeletesAndAdds(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	name := testlab.UniqueIncusPrefix() + "scraper"
	c := testlab.NewIncusClientCert(t, "m")
	reconcile(t, srv, []Client{{Name: name, Certificate: c.CertPEM, Type: "client"}}, PlanOptions{})
	plan := reconcile(t, srv, []Client{{Name: name, Certificate: c.CertPEM, Type: "metrics", Description: "prometheus"}}, PlanOptions{})
	if ops(plan) != "replace "+name+" delete+add" {
		t.Fatalf("plan = %s", ops(plan))
	}
	got, _, err := srv.GetCertificate(c.FP)
	if err != nil || got.Type != "metrics" || got.Name != name || got.Description != "prometheus" {
		t.Fatalf("after type change: %+v, %v", got, err)
	}
	if p := planOnly(t, srv, []Client{{Name: name, Certificate: c.CertPEM, Type: "metrics", Description: "prometheus"}}, PlanOptions{}); p.Changed() {
		t.Fatalf("not converged: %s", ops(p))
	}
}

func TestLabAbsentRemoves(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	a, b := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "b")
	reconcile(t, srv, []Client{{Name: pre + "a", Certificate: a.CertPEM, Type: "client"}, {Name: pre + "b", Certificate: b.CertPEM, Type: "client"}}, PlanOptions{})
	plan := reconcile(t, srv, []Client{{Name: pre + "a", Certificate: a.CertPEM, Type: "client"}, {Name: pre + "b", State: "absent"}}, PlanOptions{})
	if ops(plan) != "remove "+pre+"b" {
		t.Fatalf("plan = %s", ops(plan))
	}
	requireGone(t, srv, b.FP)
}

// Prune removes what the list does not name, except keep (by name and by fingerprint in
// openssl's colon form) and everything the lab had before the test.
func TestLabPruneWithKeep(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	managed, byName, byFP, stray := testlab.NewIncusClientCert(t, "m"), testlab.NewIncusClientCert(t, "k1"), testlab.NewIncusClientCert(t, "k2"), testlab.NewIncusClientCert(t, "s")
	keep := testlab.IncusTrustedFingerprints(t, srv)
	for name, c := range map[string]testlab.IncusClientCert{pre + "kept-by-name": byName, pre + "kept-by-fp": byFP, pre + "stray": stray} {
		testlab.TrustIncusClient(t, srv, name, c)
	}
	clients := []Client{{Name: pre + "managed", Certificate: managed.CertPEM, Type: "client"}}

	// Without prune: nothing removed, and the run warns about the unmanaged entries.
	p := reconcile(t, srv, clients, PlanOptions{Keep: append(keep, pre+"kept-by-name")})
	if ops(p) != "add "+pre+"managed" || !strings.Contains(strings.Join(p.Warnings, "\n"), `"`+pre+`stray"`) {
		t.Fatalf("without prune: plan %s, warnings %v", ops(p), p.Warnings)
	}
	if strings.Contains(strings.Join(p.Warnings, "\n"), pre+"kept-by-name") {
		t.Fatalf("kept entries must not be reported: %v", p.Warnings)
	}

	before := len(testlab.IncusTrustStore(t, srv))
	p = reconcile(t, srv, clients, PlanOptions{Prune: true, Keep: append(keep, pre+"kept-by-name", strings.ToUpper(colons(byFP.FP)))})
	if ops(p) != "remove "+pre+"stray" {
		t.Fatalf("prune plan = %s", ops(p))
	}
	requireGone(t, srv, stray.FP)
	now := testlab.IncusTrustStore(t, srv)
	if len(now) != before-1 {
		t.Fatalf("prune removed %d entries, want 1", before-len(now))
	}
	for _, fp := range append(keep, byName.FP, byFP.FP, managed.FP) {
		if _, ok := now[fp]; !ok {
			t.Fatalf("prune removed kept or managed entry %s", fp[:12])
		}
	}
}

// A write that fails part way: the plan is made, then the entry it will update is deleted
// behind its back, so the API refuses the update. The add before it stays applied, the
// removal after it is not attempted, and the error says so.
func TestLabPartialFailureReportsAppliedAndNotApplied(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	x, y, n := testlab.NewIncusClientCert(t, "x"), testlab.NewIncusClientCert(t, "y"), testlab.NewIncusClientCert(t, "n")
	reconcile(t, srv, []Client{{Name: pre + "x", Certificate: x.CertPEM, Type: "client"}, {Name: pre + "y", Certificate: y.CertPEM, Type: "client"}}, PlanOptions{})
	plan := planOnly(t, srv, []Client{
		{Name: pre + "n", Certificate: n.CertPEM, Type: "client"},
		{Name: pre + "x", Certificate: x.CertPEM, Type: "client", Description: "changed"},
		{Name: pre + "y", State: "absent"},
	}, PlanOptions{})
	if ops(plan) != fmt.Sprintf("add %sn, update %sx, remove %sy", pre, pre, pre) {
		t.Fatalf("plan = %s", ops(plan))
	}
	if err := srv.DeleteCertificate(x.FP); err != nil {
		t.Fatal(err)
	}
	err := plan.Apply(srv)
	var ae *ApplyError
	if !errors.As(err, &ae) {
		t.Fatalf("apply error = %v, want an ApplyError", err)
	}
	statuses := []string{}
	for _, it := range plan.Items {
		statuses = append(statuses, it.Status)
	}
	if strings.Join(statuses, ",") != "applied,failed,not_applied" {
		t.Fatalf("statuses = %v", statuses)
	}
	msg := err.Error()
	for _, want := range []string{`update "` + pre + `x"`, "failed", `Applied before the failure: add "` + pre + `n"`, `Not applied: update "` + pre + `x"`, `remove "` + pre + `y"`} {
		if !strings.Contains(msg, want) {
			t.Fatalf("message %q lacks %q", msg, want)
		}
	}
	now := testlab.IncusTrustStore(t, srv)
	if _, ok := now[n.FP]; !ok {
		t.Fatal("the applied add is not in the trust store")
	}
	if _, ok := now[y.FP]; !ok {
		t.Fatal("the not-applied removal happened anyway")
	}
}

func TestLabMissingProjectChangesNothing(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	before := testlab.IncusTrustState(t, srv)
	desired, _, err := ValidateClients([]Client{
		{Name: pre + "ok", Certificate: testlab.NewIncusClientCert(t, "ok").CertPEM, Type: "client"},
		{Name: pre + "ci", Certificate: testlab.NewIncusClientCert(t, "ci").CertPEM, Type: "client", Restricted: true, Projects: []string{"production", "qa"}},
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Plan(srv, desired, PlanOptions{})
	if err == nil || !strings.Contains(err.Error(), `client "`+pre+`ci": project "qa" does not exist on this server`) {
		t.Fatalf("error = %v", err)
	}
	if testlab.IncusTrustState(t, srv) != before {
		t.Fatal("the trust store changed")
	}
}
