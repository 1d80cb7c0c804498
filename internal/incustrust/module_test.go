package incustrust

import (
	"strings"
	"testing"

	"github.com/lxc/incus/v6/shared/api"

	"github.com/incus-access/incus-access/internal/testlab"
)

func TestDiffShowsManagedEntriesOnly(t *testing.T) {
	a, b, x := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "b"), testlab.NewIncusClientCert(t, "x")
	p := mustPlan(t, mustDesired(t, Client{Name: "a", Certificate: b.CertPEM, Type: "client"}),
		[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("stray", x, "client", false, nil, "")}, PlanOptions{})
	before, after := DiffText(p)
	if !strings.Contains(before, a.FP) || strings.Contains(before, b.FP) {
		t.Fatalf("before:\n%s", before)
	}
	if !strings.Contains(after, b.FP) || strings.Contains(after, a.FP) {
		t.Fatalf("after:\n%s", after)
	}
	if strings.Contains(before+after, "stray") {
		t.Fatalf("an unmanaged, untouched entry must not be in the diff")
	}
}

func TestDiffOfOneAddedClientShowsOnlyThatClient(t *testing.T) {
	a, b, c := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "b"), testlab.NewIncusClientCert(t, "c")
	// The server lists entries in its own order (not by name); b was removed by hand.
	p := mustPlan(t, mustDesired(t,
		Client{Name: "a", Certificate: a.CertPEM, Type: "client"},
		Client{Name: "b", Certificate: b.CertPEM, Type: "client"},
		Client{Name: "c", Certificate: c.CertPEM, Type: "client"}),
		[]api.Certificate{stored("c", c, "client", false, nil, ""), stored("a", a, "client", false, nil, "")}, PlanOptions{})
	before, after := DiffText(p)
	var bEntry strings.Builder
	writeEntry(&bEntry, Entry{Name: "b", Fingerprint: b.FP, Type: "client", Projects: []string{}})
	if want := strings.Replace(after, bEntry.String(), "", 1); before != want {
		t.Fatalf("the diff must only add b; before:\n%s\nafter:\n%s", before, after)
	}
}
