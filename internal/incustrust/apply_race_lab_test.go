package incustrust

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/incus-access/incus-access/internal/testlab"
)

func statuses(p *TrustPlan) string {
	var s []string
	for _, it := range p.Items {
		s = append(s, string(it.Op)+" "+it.Status)
	}
	return strings.Join(s, ", ")
}

// Another writer trusts the same certificate with the same settings between plan and
// apply: the add's 409 is "already done", not a failure.
func TestLabAddRacedByAnotherWriterIsAlreadyDone(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	a := testlab.NewIncusClientCert(t, "a")
	plan := planOnly(t, srv, []Client{{Name: pre + "a", Certificate: a.CertPEM, Type: "client", Description: "d"}}, PlanOptions{})
	reconcile(t, srv, []Client{{Name: pre + "a", Certificate: a.CertPEM, Type: "client", Description: "d"}}, PlanOptions{})
	if err := plan.Apply(srv); err != nil {
		t.Fatalf("apply after the other writer: %v", err)
	}
	if got := statuses(plan); got != "add already_done" {
		t.Fatalf("statuses = %s", got)
	}
}

// The same certificate added by another writer with other settings is a real conflict:
// the first pass fails, the recheck turns the add into an update, which is applied.
func TestLabConflictingWriterIsRecheckedOnce(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	a, b := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "b")
	want := []Client{{Name: pre + "a", Certificate: a.CertPEM, Type: "client", Description: "mine"},
		{Name: pre + "b", Certificate: b.CertPEM, Type: "client"}}
	desired, _, err := ValidateClients(want, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Plan(srv, desired, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reconcile(t, srv, []Client{{Name: pre + "a", Certificate: a.CertPEM, Type: "client", Description: "theirs"}}, PlanOptions{})
	err = plan.ApplyRechecked(srv, func() (*TrustPlan, error) { return Plan(srv, desired, PlanOptions{}) })
	if err != nil {
		t.Fatalf("apply with recheck: %v", err)
	}
	// a's add was made by the other writer (with other settings, which the recheck's update
	// fixes); b was not applied in the first pass (it came after the failure), so the
	// recheck adds it.
	if got := statuses(plan); got != "add already_done, add applied, update applied" {
		t.Fatalf("statuses = %s", got)
	}
	if e := entryNamed(t, srv, pre+"a"); len(e) != 1 || e[0].Description != "mine" {
		t.Fatalf("a = %+v", e)
	}
	if len(plan.Warnings) == 0 || !strings.Contains(plan.Warnings[len(plan.Warnings)-1], "rechecked once") {
		t.Fatalf("no recheck warning: %v", plan.Warnings)
	}
}

// A delete of an entry another writer removed first is "already done".
func TestLabRemoveOfGoneEntryIsAlreadyDone(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	pre := testlab.UniqueIncusPrefix()
	x := testlab.NewIncusClientCert(t, "x")
	testlab.TrustIncusClient(t, srv, pre+"x", x)
	plan := planOnly(t, srv, []Client{{Name: pre + "x", State: "absent"}}, PlanOptions{})
	if err := srv.DeleteCertificate(x.FP); err != nil {
		t.Fatal(err)
	}
	if err := plan.Apply(srv); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got := statuses(plan); got != "remove already_done" {
		t.Fatalf("statuses = %s", got)
	}
}

// moduleClients are n new clients as the module's clients option.
func moduleClients(t *testing.T, pre string, n int) ([]any, []testlab.IncusClientCert) {
	var out []any
	var certs []testlab.IncusClientCert
	for i := 0; i < n; i++ {
		c := testlab.NewIncusClientCert(t, "c")
		certs = append(certs, c)
		out = append(out, map[string]any{"name": pre + string(rune('a'+i)), "certificate": c.CertPEM,
			"restricted": true, "projects": []any{"production"}})
	}
	return out, certs
}

// runPair runs the module twice at once, one run per socket, and fails on any failure.
func runPair(t *testing.T, sockets [2]string, extra [2]map[string]any, clients []any, round int) [2]map[string]any {
	t.Helper()
	var out [2]map[string]any
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			args := map[string]any{"socket": sockets[i], "clients": clients}
			for k, v := range extra[i] {
				args[k] = v
			}
			out[i], _ = testlab.RunModule(t, "incus_trust", args)
		}(i)
	}
	wg.Wait()
	for i, r := range out {
		if r["failed"] == true {
			t.Fatalf("round %d run %d failed: %v", round, i, r["msg"])
		}
	}
	return out
}

func countFP(t *testing.T, srv incus.InstanceServer, certs []testlab.IncusClientCert) int {
	now := testlab.IncusTrustStore(t, srv)
	n := 0
	for _, c := range certs {
		if _, ok := now[c.FP]; ok {
			n++
		}
	}
	return n
}

// Two module runs with the same six new clients against one store at once, ten rounds
// (before: one of each pair failed with 409): both succeed, each client is there once.
func TestLabTwoRunsAtOnceOnOneStore(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	l := testlab.Get(t)
	for round := 0; round < 10; round++ {
		clients, certs := moduleClients(t, testlab.UniqueIncusPrefix(), 6)
		runPair(t, [2]string{l.Host1Socket, l.Host1Socket}, [2]map[string]any{}, clients, round)
		if n := countFP(t, srv, certs); n != 6 {
			t.Fatalf("round %d: %d of 6 clients trusted", round, n)
		}
	}
}

// clusterMembers connects to the lab cluster's two members (lab/cluster.sh) and restores
// the cluster's one trust store after the test.
func clusterMembers(t *testing.T) [2]string {
	t.Helper()
	testlab.Get(t)
	s := [2]string{os.Getenv("LAB_CLUSTER1_SOCKET"), os.Getenv("LAB_CLUSTER2_SOCKET")}
	for _, p := range s {
		if _, err := os.Stat(p); p == "" || err != nil {
			if os.Getenv("LAB_REQUIRED") == "1" {
				t.Fatalf("lab cluster not up (%q): run lab/cluster.sh up", p)
			}
			t.Skipf("lab cluster not up (%q): run lab/cluster.sh up", p)
		}
	}
	srv, err := incus.ConnectIncusUnix(s[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	testlab.RestoreIncusTrustStoreAfter(t, srv)
	return s
}

// The members of the lab cluster share one store and say so; the module run on both at
// once (no cluster_peers: the race the role avoids) still converges without failure; and
// prune through a member never removes the members' own server certificates, so the
// cluster keeps working.
func TestLabClusterMembersShareOneStore(t *testing.T) {
	sockets := clusterMembers(t)
	var ids [2]ServerIdentity
	for i, s := range sockets {
		res, _ := testlab.RunModule(t, "incus_trust", map[string]any{"identify": true, "clients": []any{}, "socket": s})
		if res["failed"] == true {
			t.Fatalf("identify: %v", res["msg"])
		}
		srv := res["server"].(map[string]any)
		ids[i] = ServerIdentity{Fingerprint: srv["fingerprint"].(string), Clustered: srv["clustered"].(bool), Member: srv["member"].(string)}
		if facts := res["ansible_facts"].(map[string]any); facts[IdentityFact] != ids[i].Fingerprint {
			t.Fatalf("fact %v", facts)
		}
	}
	if ids[0].Fingerprint != ids[1].Fingerprint || !ids[0].Clustered || ids[0].Member == ids[1].Member {
		t.Fatalf("identities %+v", ids)
	}
	m1, _ := incus.ConnectIncusUnix(sockets[0], nil)
	servers := map[string]bool{}
	for fp, c := range testlab.IncusTrustStore(t, m1) {
		if c.Type == api.CertificateTypeServer {
			servers[fp] = true
		}
	}
	if len(servers) != 2 {
		t.Fatalf("%d server certificates in the cluster's store, want 2", len(servers))
	}
	for round := 0; round < 5; round++ {
		clients, certs := moduleClients(t, testlab.UniqueIncusPrefix(), 4)
		runPair(t, sockets, [2]map[string]any{}, clients, round)
		if n := countFP(t, m1, certs); n != 4 {
			t.Fatalf("round %d: %d of 4 clients trusted", round, n)
		}
	}
	res, _ := testlab.RunModule(t, "incus_trust", map[string]any{"socket": sockets[1], "clients": []any{}, "prune": true})
	if res["failed"] == true || res["changed"] != true {
		t.Fatalf("prune: %v", res)
	}
	now := testlab.IncusTrustStore(t, m1)
	for fp := range servers {
		if _, ok := now[fp]; !ok {
			t.Fatalf("prune removed the server certificate %s", fp[:12])
		}
	}
	if len(now) != 2 {
		t.Fatalf("after prune %d entries, want the 2 server certificates", len(now))
	}
	m2, _ := incus.ConnectIncusUnix(sockets[1], nil)
	members, err := m2.GetClusterMembers()
	if err != nil || len(members) != 2 {
		t.Fatalf("cluster members after prune: %v %v", members, err)
	}
	for _, m := range members {
		if m.Status != "Online" {
			t.Fatalf("member %s is %s after prune", m.ServerName, m.Status)
		}
	}
}

// With cluster_peers, of two members of one cluster only the first by name reconciles;
// the other changes nothing and names it.
func TestLabClusterPeersReconcileOnce(t *testing.T) {
	sockets := clusterMembers(t)
	m1, _ := incus.ConnectIncusUnix(sockets[0], nil)
	id, err := Identify(m1)
	if err != nil {
		t.Fatal(err)
	}
	peers := map[string]any{"zz-member": id.Fingerprint, "aa-member": id.Fingerprint}
	clients, certs := moduleClients(t, testlab.UniqueIncusPrefix(), 3)
	out := runPair(t, sockets, [2]map[string]any{
		{"cluster_peers": peers, "inventory_host": "zz-member"},
		{"cluster_peers": peers, "inventory_host": "aa-member"}}, clients, 0)
	if out[0]["reconciled_by"] != "aa-member" || out[0]["changed"] != false || out[0]["msg"] != "same cluster as aa-member: reconciled there" {
		t.Fatalf("zz-member: %v", out[0])
	}
	if out[1]["reconciled_by"] != "aa-member" || out[1]["changed"] != true {
		t.Fatalf("aa-member: %v", out[1])
	}
	if n := countFP(t, m1, certs); n != 3 {
		t.Fatalf("%d of 3 clients trusted", n)
	}
}
