package incustrust

// One test per step of NewTrustPlan (plansteps.go); plan_test.go tests whole plans.

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lxc/incus/v6/shared/api"

	"github.com/incus-access/incus-access/internal/testlab"
)

func TestKeepSet(t *testing.T) {
	cases := []struct {
		name string
		keep []string
		want []string
	}{
		{"nothing", nil, nil},
		{"a name stays as given", []string{"ci"}, []string{"ci"}},
		{"a pasted fingerprint is also kept in compared form", []string{" AA:BB:cc "}, []string{" AA:BB:cc ", "aabbcc"}},
	}
	for _, tc := range cases {
		var got []string
		for k := range keepSet(tc.keep) {
			got = append(got, k)
		}
		sort.Strings(got)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: keepSet(%q) = %q, want %q", tc.name, tc.keep, got, tc.want)
		}
	}
}

func TestServerProblems(t *testing.T) {
	a, member := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "member")
	present := Client{Name: "ci", Certificate: a.CertPEM}
	restricted := func(c Client, projects ...string) Client { c.Restricted, c.Projects = true, projects; return c }
	memberEntry := stored("member", member, "server", false, nil, "")
	memberEntry.Fingerprint = strings.ToUpper(member.FP) // compared case-insensitively
	cases := []struct {
		name    string
		clients []Client
		current []api.Certificate
		keep    []string
		want    []string
	}{
		{"fits the server", []Client{restricted(present, "production")}, nil, []string{"ci"}, nil},
		{"missing project, with what the server has", []Client{restricted(present, "prod", "qa")}, nil, nil, []string{
			`client "ci": project "prod" does not exist on this server (it has: default, production, staging)`,
			`client "ci": project "qa" does not exist on this server (it has: default, production, staging)`}},
		{"absent client named in keep", []Client{{Name: "old", State: "absent"}}, nil, []string{"old"}, []string{
			`client "old": state is absent but keep names it`}},
		{"absent client whose certificate keep names", []Client{{Name: "old", State: "absent", Certificate: a.CertPEM}}, nil,
			[]string{strings.ToUpper(colons(a.FP))}, []string{`client "old": state is absent but keep names it`}},
		{"absent client's projects are not checked", []Client{{Name: "old", State: "absent", Projects: []string{"gone"}}}, nil, nil, nil},
		{"a cluster member's certificate as a client; project problems first",
			[]Client{{Name: "laptop", Certificate: member.CertPEM}, restricted(present, "qa")}, []api.Certificate{memberEntry}, nil, []string{
				`client "ci": project "qa" does not exist on this server (it has: default, production, staging)`,
				`client "laptop": this certificate is trusted as the server (cluster member) certificate "member"; a client needs its own`}},
		{"the same certificate trusted as a client is fine", []Client{present}, []api.Certificate{stored("other", a, "client", false, nil, "")}, nil, nil},
	}
	for _, tc := range cases {
		got := serverProblems(mustDesired(t, tc.clients...), tc.current, []string{"staging", "default", "production"}, keepSet(tc.keep))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestReadEntriesAndSnapshot(t *testing.T) {
	a, b := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "b")
	first := stored("zed", a, "client", true, []string{"staging", "default"}, "ops")
	first.Fingerprint = strings.ToUpper(a.FP)
	unreadable := api.Certificate{Fingerprint: "00ff", CertificatePut: api.CertificatePut{Name: "alpha", Type: "client", Certificate: "garbage"}}
	entries := readEntries([]api.Certificate{first, unreadable, stored("alpha", b, "metrics", false, nil, "")})
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s %s %s %t %q %q not_after=%t", e.Name, short(e.Fingerprint), e.Type, e.Restricted, e.Projects, e.Description, e.NotAfter != ""))
	}
	want := []string{
		fmt.Sprintf(`zed %s client true ["default" "staging"] "ops" not_after=true`, a.FP[:12]),
		`alpha 00ff client false [] "" not_after=false`,
		fmt.Sprintf(`alpha %s metrics false [] "" not_after=true`, b.FP[:12]),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("readEntries (server's order, fingerprint lower case, projects sorted):\n got %q\nwant %q", got, want)
	}
	if entries[0].pem != a.CertPEM {
		t.Error("the stored PEM must be kept as the server has it")
	}
	var order []string
	for _, e := range snapshot(entries) {
		order = append(order, e.Name+" "+short(e.Fingerprint))
	}
	wantOrder := []string{"alpha 00ff", "alpha " + b.FP[:12], "zed " + a.FP[:12]}
	if b.FP < "00ff" {
		wantOrder[0], wantOrder[1] = wantOrder[1], wantOrder[0]
	}
	if !reflect.DeepEqual(order, wantOrder) {
		t.Errorf("snapshot order (name, then fingerprint) = %q, want %q", order, wantOrder)
	}
	if snapshot(nil) != nil {
		t.Error("an empty trust store snapshots as nil")
	}
	if entries[0].Name != "zed" {
		t.Error("snapshot must not reorder the entries it is given")
	}
}

// matches renders matchClients' result as sorted "client → entry name/fingerprint" lines.
func matches(m map[*DesiredClient]*Entry, certs map[string]string) []string {
	var out []string
	for d, e := range m {
		out = append(out, fmt.Sprintf("%s → %s/%s", d.Name, e.Name, certs[e.Fingerprint]))
	}
	sort.Strings(out)
	return out
}

func TestMatchClients(t *testing.T) {
	a, b, c := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "b"), testlab.NewIncusClientCert(t, "c")
	certName := map[string]string{a.FP: "A", b.FP: "B", c.FP: "C"}
	// Two entries under one name: the lower fingerprint is taken over first.
	low, high := b, c
	if high.FP < low.FP {
		low, high = high, low
	}
	cl := func(name string, tc testlab.IncusClientCert) Client {
		return Client{Name: name, Certificate: tc.CertPEM}
	}
	cases := []struct {
		name    string
		clients []Client
		current []api.Certificate
		want    []string
	}{
		{"same certificate, same name", []Client{cl("a", a)}, []api.Certificate{stored("a", a, "client", false, nil, "")}, []string{"a → a/A"}},
		{"same certificate, other name (rename)", []Client{cl("new", a)}, []api.Certificate{stored("old", a, "client", false, nil, "")}, []string{"new → old/A"}},
		{"same name, new certificate (rotation)", []Client{cl("a", b)}, []api.Certificate{stored("a", a, "client", false, nil, "")}, []string{"a → a/A"}},
		{"fingerprint wins over name (a swap)", []Client{cl("a", b), cl("b", a)},
			[]api.Certificate{stored("a", a, "client", false, nil, ""), stored("b", b, "client", false, nil, "")}, []string{"a → b/B", "b → a/A"}},
		{"an entry taken by certificate is not taken again by name", []Client{cl("a", c), cl("x", a)},
			[]api.Certificate{stored("a", a, "client", false, nil, "")}, []string{"x → a/A"}},
		{"of two entries under the name, the lower fingerprint", []Client{cl("a", a)},
			[]api.Certificate{stored("a", high, "client", false, nil, ""), stored("a", low, "client", false, nil, "")}, []string{"a → a/" + certName[low.FP]}},
		{"a cluster member's entry is never taken over", []Client{cl("m", a), cl("n", b)},
			[]api.Certificate{stored("x", a, "server", false, nil, ""), stored("n", c, "server", false, nil, "")}, nil},
		{"absent clients match nothing", []Client{{Name: "a", State: "absent", Certificate: a.CertPEM}},
			[]api.Certificate{stored("a", a, "client", false, nil, "")}, nil},
		{"nothing trusted yet", []Client{cl("a", a)}, nil, nil},
	}
	for _, tc := range cases {
		got := matches(matchClients(mustDesired(t, tc.clients...), readEntries(tc.current)), certName)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestWantedEntry(t *testing.T) {
	a := testlab.NewIncusClientCert(t, "a")
	d := mustDesired(t, Client{Name: "ci", Certificate: strings.ReplaceAll(a.CertPEM, "\n", "\r\n"), Type: "metrics",
		Restricted: true, Projects: []string{"staging", "default"}, Description: "CI"})[0]
	e := wantedEntry(d)
	if e.Name != "ci" || e.Fingerprint != a.FP || e.Type != "metrics" || !e.Restricted || !reflect.DeepEqual(e.Projects, []string{"default", "staging"}) ||
		e.Description != "CI" || !e.Managed || e.NotAfter != rfc3339(d.Cert.NotAfter) {
		t.Fatalf("wantedEntry = %+v", e)
	}
	if e.pem != a.CertPEM {
		t.Fatalf("the entry must carry the canonical PEM, got %q", e.pem)
	}
}

func TestClientItem(t *testing.T) {
	a, b := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "b")
	want := Entry{Name: "ci", Fingerprint: b.FP, Type: "client", Projects: []string{}, Managed: true, pem: "canonical"}
	with := func(e Entry, change func(*Entry)) *Entry { change(&e); return &e }
	same := with(want, func(e *Entry) { e.pem = "as stored" })
	cases := []struct {
		name string
		have *Entry
		want string // the item, its reason and the PEM it sends; "" for no item
	}{
		{"nothing matched: add", nil, "add ci method= target= old= oldname= | not trusted yet | pem=canonical"},
		{"converged", same, ""},
		{"fields change: update in place", with(*same, func(e *Entry) { e.Description, e.Restricted, e.Projects = "old", true, []string{"b", "a"} }),
			"update ci method= target=B old= oldname= | description \"old\" → \"\"; restricted true → false; projects [a, b] → [] | pem=as stored"},
		{"other name: rename", with(*same, func(e *Entry) { e.Name = "old" }),
			"rename ci method= target=B old= oldname=old | the same certificate is trusted as \"old\" | pem=as stored"},
		{"other name and fields: rename with the changes", with(*same, func(e *Entry) { e.Name, e.Description = "old", "x" }),
			"rename ci method= target=B old= oldname=old | the same certificate is trusted as \"old\"; description \"x\" → \"\" | pem=as stored"},
		{"other certificate: replace in place", with(*same, func(e *Entry) { e.Fingerprint = a.FP }),
			"replace ci method=put target=A old=A oldname= | new certificate (rotation, " + b.FP[:12] + " replaces " + a.FP[:12] + ") | pem=canonical"},
		{"other type: delete and add", with(*same, func(e *Entry) { e.Type = "metrics" }),
			"replace ci method=delete+add target=B old=B oldname= | type metrics → client (the API cannot change a type: delete and add) | pem=canonical"},
		{"other certificate and type", with(*same, func(e *Entry) { e.Fingerprint, e.Type = a.FP, "metrics" }),
			"replace ci method=delete+add target=A old=A oldname= | new certificate (rotation, " + b.FP[:12] + " replaces " + a.FP[:12] + ") and type metrics → client | pem=canonical"},
	}
	letter := map[string]string{a.FP: "A", b.FP: "B", "": ""}
	for _, tc := range cases {
		it := clientItem(want, tc.have)
		got := ""
		if it != nil {
			if it.Status != StatusPlanned || it.Name != "ci" || it.Fingerprint != b.FP || it.want.Fingerprint != b.FP {
				t.Errorf("%s: item %+v", tc.name, it)
			}
			got = fmt.Sprintf("%s %s method=%s target=%s old=%s oldname=%s | %s | pem=%s", it.Op, it.Name, it.Method, letter[it.target], letter[it.OldFingerprint], it.OldName, it.Reason, it.want.pem)
		}
		if got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestClientItems(t *testing.T) {
	a, b, c := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "b"), testlab.NewIncusClientCert(t, "c")
	desired := mustDesired(t,
		Client{Name: "z", Certificate: c.CertPEM},
		Client{Name: "gone", State: "absent"},
		Client{Name: "a", Certificate: a.CertPEM},
		Client{Name: "b", Certificate: b.CertPEM})
	entries := readEntries([]api.Certificate{stored("a", a, "client", false, nil, ""), stored("b", b, "client", false, nil, "old")})
	items := clientItems(desired, matchClients(desired, entries))
	var got []string
	for _, it := range items {
		got = append(got, string(it.Op)+" "+it.Name)
	}
	// In the clients' order; converged and absent clients give none.
	if want := []string{"add z", "update b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("clientItems = %q, want %q", got, want)
	}
}

func TestNamesOf(t *testing.T) {
	a := testlab.NewIncusClientCert(t, "a")
	n := namesOf(mustDesired(t,
		Client{Name: "ci", Certificate: a.CertPEM},
		Client{Name: "old", State: "absent"},
		Client{Name: "older", State: "absent", Certificate: testlab.NewIncusClientCert(t, "o").CertPEM}))
	if len(n.present) != 1 || n.present["ci"] == nil || n.present["ci"].Cert.Fingerprint != a.FP {
		t.Errorf("present = %v", n.present)
	}
	if !reflect.DeepEqual(n.absent, map[string]bool{"old": true, "older": true}) || len(n.absentFP) != 1 {
		t.Errorf("absent = %v, absentFP = %v", n.absent, n.absentFP)
	}
}

func TestJudgeStray(t *testing.T) {
	a, b, x := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "b"), testlab.NewIncusClientCert(t, "x")
	names := namesOf(mustDesired(t,
		Client{Name: "a", Certificate: a.CertPEM},
		Client{Name: "gone", State: "absent"},
		Client{Name: "gone-by-cert", State: "absent", Certificate: b.CertPEM}))
	entry := func(name string, c testlab.IncusClientCert, typ string) *Entry {
		return &Entry{Name: name, Fingerprint: c.FP, Type: typ}
	}
	prune := PlanOptions{Prune: true}
	cases := []struct {
		name   string
		e      *Entry
		keep   []string
		opts   PlanOptions
		fate   strayFate
		reason string
	}{
		{"a cluster member's certificate, even under a client's name", entry("a", x, "server"), nil, prune, strayServer, ""},
		{"an older certificate under a present client's name", entry("a", x, "client"), []string{"a"}, PlanOptions{}, strayRemoved,
			`an older certificate of client "a" (the client is trusted as ` + a.FP[:12] + `)`},
		{"an absent client's name", entry("gone", x, "client"), []string{"gone"}, PlanOptions{}, strayRemoved, "state is absent"},
		{"an absent client's certificate", entry("renamed", b, "client"), nil, PlanOptions{}, strayRemoved, "state is absent (matched by certificate)"},
		{"keep by name beats prune", entry("x", x, "client"), []string{"x"}, prune, strayKept, ""},
		{"keep by fingerprint beats prune", entry("x", x, "client"), []string{strings.ToUpper(colons(x.FP))}, prune, strayKept, ""},
		{"protected beats prune", entry("me", x, "client"), nil, PlanOptions{Prune: true, Protected: map[string]string{x.FP: "own"}}, strayProtected, ""},
		{"prune removes the rest", entry("x", x, "metrics"), nil, prune, strayRemoved, "not in clients (prune)"},
		{"without prune the rest stays unmanaged", entry("x", x, "client"), nil, PlanOptions{}, strayUnmanaged, ""},
	}
	for _, tc := range cases {
		fate, reason := judgeStray(tc.e, names, keepSet(tc.keep), tc.opts)
		if fate != tc.fate || reason != tc.reason {
			t.Errorf("%s: judgeStray = %d %q, want %d %q", tc.name, fate, reason, tc.fate, tc.reason)
		}
	}
}

func TestSortStrays(t *testing.T) {
	a, k, x, y, m := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "k"), testlab.NewIncusClientCert(t, "x"),
		testlab.NewIncusClientCert(t, "y"), testlab.NewIncusClientCert(t, "m")
	desired := mustDesired(t, Client{Name: "a", Certificate: a.CertPEM}, Client{Name: "y", State: "absent"})
	entries := readEntries([]api.Certificate{
		stored("y", y, "client", false, nil, ""), stored("a", a, "client", false, nil, ""), stored("kept", k, "client", false, nil, ""),
		stored("x", x, "client", false, nil, ""), stored("member", m, "server", false, nil, "")})
	s := sortStrays(entries, matchClients(desired, entries), namesOf(desired), keepSet([]string{"kept"}), PlanOptions{})
	var removed []string
	for _, it := range s.removals {
		removed = append(removed, fmt.Sprintf("%s %s %t %s", it.Op, it.Name, it.target == it.Fingerprint, it.Status))
	}
	if want := []string{"remove y true planned"}; !reflect.DeepEqual(removed, want) {
		t.Errorf("removals = %q, want %q", removed, want)
	}
	if !reflect.DeepEqual(s.kept, map[string]bool{"kept": true, k.FP: true}) {
		t.Errorf("kept = %v", s.kept)
	}
	if len(s.unmanaged) != 1 || s.unmanaged[0].Name != "x" {
		t.Errorf("unmanaged = %v (the claimed entry a and the member must not be there)", s.unmanaged)
	}
}

func TestStrayWarnings(t *testing.T) {
	x, y := &Entry{Name: "x", Fingerprint: "1111111111111111"}, &Entry{Name: "b", Fingerprint: "2222222222222222"}
	names := clientNames{present: map[string]*DesiredClient{"ci": {}}}
	cases := []struct {
		name   string
		strays strays
		opts   PlanOptions
		want   []string
	}{
		{"nothing to say", strays{}, PlanOptions{}, nil},
		{"one unmanaged entry", strays{unmanaged: []*Entry{x}}, PlanOptions{}, []string{
			`1 trust entry not managed by this task stays trusted (prune is off): "x" (111111111111); name them in clients or keep, or set prune to remove them`}},
		{"several, sorted", strays{unmanaged: []*Entry{x, y}}, PlanOptions{}, []string{
			`2 trust entries not managed by this task stay trusted (prune is off): "b" (222222222222), "x" (111111111111); name them in clients or keep, or set prune to remove them`}},
		{"keep that spared nothing, when pruning", strays{kept: map[string]bool{"kept": true, "aabb": true}},
			PlanOptions{Prune: true, Keep: []string{"kept", "AA:BB", "ci", "typo"}}, []string{`keep: "typo" matches no trust entry`}},
		{"keep is not checked without prune", strays{}, PlanOptions{Keep: []string{"typo"}}, nil},
	}
	for _, tc := range cases {
		if got := strayWarnings(tc.strays, names, tc.opts); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestInExecutionOrder(t *testing.T) {
	items := []*PlanItem{
		{Op: OpRemove, Name: "a"}, {Op: OpUpdate, Name: "b"}, {Op: OpAdd, Name: "z"}, {Op: OpRename, Name: "a"},
		{Op: OpReplace, Name: "a", Fingerprint: "2"}, {Op: OpAdd, Name: "c"}, {Op: OpRemove, Name: "a", Fingerprint: "1"},
	}
	var got []string
	for _, it := range inExecutionOrder(items) {
		got = append(got, string(it.Op)+" "+it.Name+it.Fingerprint)
	}
	// Adds, then in-place changes, then removals; by name, then fingerprint.
	want := []string{"add c", "add z", "rename a", "replace a2", "update b", "remove a", "remove a1"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order = %q, want %q", got, want)
	}
	if items[0].Op != OpRemove || items[2].Name != "z" {
		t.Fatal("the items given must not be reordered")
	}
}

func TestPredict(t *testing.T) {
	a, b, c, d := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "b"), testlab.NewIncusClientCert(t, "c"), testlab.NewIncusClientCert(t, "d")
	desired := mustDesired(t, Client{Name: "a", Certificate: a.CertPEM}, Client{Name: "b2", Certificate: b.CertPEM}, Client{Name: "c", Certificate: d.CertPEM})
	before := []Entry{{Name: "b", Fingerprint: b.FP}, {Name: "c", Fingerprint: c.FP}, {Name: "x", Fingerprint: "ff"}, {Name: "y", Fingerprint: "ee"}}
	items := []*PlanItem{
		{Op: OpAdd, want: Entry{Name: "a", Fingerprint: a.FP}},
		{Op: OpRename, target: b.FP, want: Entry{Name: "b2", Fingerprint: b.FP}},
		{Op: OpReplace, target: c.FP, want: Entry{Name: "c", Fingerprint: d.FP}},
		{Op: OpRemove, target: "ff"},
	}
	var got []string
	for _, e := range predict(before, items, desired) {
		got = append(got, fmt.Sprintf("%s %s %t", e.Name, short(e.Fingerprint), e.Managed))
	}
	want := []string{"a " + a.FP[:12] + " true", "b2 " + b.FP[:12] + " true", "c " + d.FP[:12] + " true", "y ee false"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("predict = %q, want %q", got, want)
	}
	if before[0].Name != "b" || len(before) != 4 {
		t.Fatal("predict must not change the trust store it is given")
	}
}

func TestAdviceWarnings(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a := testlab.NewIncusClientCert(t, "a")
	desired := mustDesired(t,
		Client{Name: "open", Certificate: a.CertPEM, Projects: []string{"default"}},
		Client{Name: "nowhere", Certificate: testlab.NewIncusClientCert(t, "n").CertPEM, Restricted: true},
		Client{Name: "gone", State: "absent", Restricted: true})
	after := []Entry{
		{Name: "soon", Fingerprint: "aaaaaaaaaaaaaaaa", Managed: true, notAfter: now.Add(10 * 24 * time.Hour)},
		{Name: "stray", Fingerprint: "bbbbbbbbbbbbbbbb", notAfter: now.Add(-24 * time.Hour)},
		{Name: "late", Fingerprint: "cccccccccccccccc", Managed: true, notAfter: now.Add(60 * 24 * time.Hour)},
		{Name: "unreadable", Fingerprint: "dddddddddddddddd"},
	}
	advice := []string{
		`client "open": projects are ignored while restricted is false (the client can reach every project)`,
		`client "nowhere": restricted with no projects: the client can reach no project`,
	}
	cases := []struct {
		name string
		days int
		want []string
	}{
		{"expiry warnings off", 0, advice},
		{"within 30 days", 30, append(append([]string{}, advice...),
			`client "soon": certificate aaaaaaaaaaaa expires on 2030-01-11 (in 10 days; expiry_warning_days is 30)`,
			`unmanaged trust entry "stray": certificate bbbbbbbbbbbb expired on 2029-12-31`)},
	}
	for _, tc := range cases {
		if got := adviceWarnings(desired, after, PlanOptions{ExpiryWarningDays: tc.days, Now: now}); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestFieldChanges(t *testing.T) {
	base := Entry{Description: "d", Restricted: true, Projects: []string{"b", "a"}}
	cases := []struct {
		name string
		want Entry
		out  []string
	}{
		{"none (project order does not matter)", Entry{Description: "d", Restricted: true, Projects: []string{"a", "b"}}, nil},
		{"each field", Entry{Description: "", Restricted: false, Projects: nil},
			[]string{`description "d" → ""`, "restricted true → false", "projects [a, b] → []"}},
	}
	for _, tc := range cases {
		if got := fieldChanges(&base, &tc.want); !reflect.DeepEqual(got, tc.out) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.out)
		}
	}
}
