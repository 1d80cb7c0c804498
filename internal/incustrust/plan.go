// Package incustrust reconciles the trusted client certificates of one Incus server with
// a desired list: it compares the list with GetCertificates() and returns a TrustPlan
// (add, update, rename, replace, remove, each with a reason) as data; Apply executes it.
// Check mode is a plan that is not applied, so it cannot drift from a real run.
package incustrust

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lxc/incus/v6/shared/api"
)

// Client is one entry of the module's clients option (the seed's incus_trusted_clients
// with the certificate's content instead of its file name).
type Client struct {
	Name        string   `ansible:"name"`
	Description string   `ansible:"description"`
	Certificate string   `ansible:"certificate"`
	Type        string   `ansible:"type"`
	Restricted  bool     `ansible:"restricted"`
	Projects    []string `ansible:"projects"`
	State       string   `ansible:"state"`
}

// DesiredClient is a Client whose input has been checked and whose certificate is parsed.
type DesiredClient struct {
	Client
	Cert *Certificate // nil only for state=absent without a certificate
}

func (d *DesiredClient) present() bool { return d.State != "absent" }

// Entry is one trust store entry as the audit reports it.
type Entry struct {
	Name        string   `json:"name"`
	Fingerprint string   `json:"fingerprint"`
	Type        string   `json:"type"`
	Restricted  bool     `json:"restricted"`
	Projects    []string `json:"projects"`
	Description string   `json:"description"`
	// NotAfter is the certificate's expiry (RFC 3339, UTC); empty if unreadable.
	NotAfter string `json:"not_after"`
	// Managed is true when the entry is one of the module's clients.
	Managed bool `json:"managed"`

	pem      string // the certificate as the server stores it (sent back unchanged on PUT)
	notAfter time.Time
}

// Op is what a plan item does to the trust store.
type Op string

const (
	OpAdd     Op = "add"     // trust a certificate that is not trusted yet
	OpUpdate  Op = "update"  // same name and certificate: description/restricted/projects change
	OpRename  Op = "rename"  // same certificate under a new name (other fields may change too)
	OpReplace Op = "replace" // same name, the certificate or the type changes
	OpRemove  Op = "remove"  // stop trusting a certificate
)

// Item statuses.
const (
	StatusPlanned    = "planned"
	StatusApplied    = "applied"
	StatusFailed     = "failed"
	StatusNotApplied = "not_applied"
	// StatusAlreadyDone: the trust store already had the change when this run made it
	// (another run or cluster member made it first).
	StatusAlreadyDone = "already_done"
)

// PlanItem is one change to the trust store.
type PlanItem struct {
	Op   Op     `json:"op"`
	Name string `json:"name"`
	// Fingerprint is the certificate trusted afterwards (remove: the one removed).
	Fingerprint string `json:"fingerprint"`
	// OldFingerprint is the certificate that stops being trusted (replace).
	OldFingerprint string `json:"old_fingerprint,omitempty"`
	// OldName is the name the certificate was trusted under (rename).
	OldName string `json:"old_name,omitempty"`
	Reason  string `json:"reason"`
	// Method says how a replace is done: "put" (the API swaps the certificate in place)
	// or "delete+add" (the type changes, which the API cannot update).
	Method string `json:"method,omitempty"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`

	target string // fingerprint of the existing entry the API call addresses
	want   Entry  // the entry afterwards (add, update, rename, replace)
}

func (it *PlanItem) phase() int {
	switch it.Op {
	case OpAdd:
		return 0
	case OpRemove:
		return 2
	}
	return 1
}

// TrustPlan is everything the module will do on one server, in execution order: adds
// first, then in-place changes, then removals, so a client never loses access in between.
type TrustPlan struct {
	Items    []*PlanItem
	Before   []Entry // the trust store as read, sorted like After (by name, then fingerprint)
	After    []Entry // the trust store once the plan is applied
	Warnings []string
}

// Changed reports whether the plan does anything.
func (p *TrustPlan) Changed() bool { return len(p.Items) > 0 }

// PlanOptions are the reconciliation settings besides the client list.
type PlanOptions struct {
	Prune bool
	// Keep lists names or fingerprints that prune never removes.
	Keep []string
	// Protected maps fingerprints prune must never remove to the reason (the
	// certificate the module itself connects with).
	Protected         map[string]string
	ExpiryWarningDays int
	Now               time.Time
}

// ValidationError lists every problem found before anything was written.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0] + "; nothing was changed"
	}
	return fmt.Sprintf("%d problems, nothing was changed: %s", len(e.Problems), strings.Join(e.Problems, "; "))
}

// ValidateClients checks the client list on its own (no server needed): names,
// certificates, validity dates, duplicates. secrets returns the text of any private
// key block found, for masking, even when err is set.
func ValidateClients(clients []Client, now time.Time) (desired []*DesiredClient, secrets []string, err error) {
	var problems []string
	byName := map[string]int{}
	byFP := map[string]int{}
	for i, c := range clients {
		label := fmt.Sprintf("client %q", c.Name)
		if strings.TrimSpace(c.Name) == "" {
			problems = append(problems, fmt.Sprintf("clients[%d]: name is empty", i))
			continue
		}
		if c.Type == "" {
			c.Type = api.CertificateTypeClient
		}
		if c.State == "" {
			c.State = "present"
		}
		if j, dup := byName[c.Name]; dup {
			problems = append(problems, fmt.Sprintf("%s: the name is given twice (clients[%d] and clients[%d])", label, j, i))
			continue
		}
		byName[c.Name] = i
		d := &DesiredClient{Client: c}
		if c.Certificate != "" {
			cert, perr := ParseCertificate(c.Certificate)
			if perr != nil {
				if pk, ok := perr.(*PrivateKeyError); ok {
					secrets = append(secrets, pk.Blocks...)
				}
				problems = append(problems, fmt.Sprintf("%s: certificate: %s", label, perr))
				continue
			}
			d.Cert = cert
		} else if d.present() {
			problems = append(problems, fmt.Sprintf("%s: certificate is empty", label))
			continue
		}
		if d.Cert != nil {
			if j, dup := byFP[d.Cert.Fingerprint]; dup {
				problems = append(problems, fmt.Sprintf("%s: the same certificate (fingerprint %s) is also given as client %q; one certificate can be trusted under one name only",
					label, d.Cert.Fingerprint, clients[j].Name))
				continue
			}
			byFP[d.Cert.Fingerprint] = i
			if d.present() {
				if now.After(d.Cert.NotAfter) {
					problems = append(problems, fmt.Sprintf("%s: certificate (fingerprint %s) expired on %s", label, short(d.Cert.Fingerprint), day(d.Cert.NotAfter)))
					continue
				}
				if now.Before(d.Cert.NotBefore) {
					problems = append(problems, fmt.Sprintf("%s: certificate (fingerprint %s) is not valid before %s", label, short(d.Cert.Fingerprint), d.Cert.NotBefore.UTC().Format(time.RFC3339)))
					continue
				}
			}
		}
		projects := slices.Clone(c.Projects)
		sort.Strings(projects)
		for k := 1; k < len(projects); k++ {
			if projects[k] == projects[k-1] {
				problems = append(problems, fmt.Sprintf("%s: project %q is listed twice", label, projects[k]))
			}
		}
		d.Projects = slices.Compact(projects)
		if d.Projects == nil {
			d.Projects = []string{}
		}
		desired = append(desired, d)
	}
	if len(problems) > 0 {
		return nil, secrets, &ValidationError{Problems: problems}
	}
	return desired, secrets, nil
}

// NewTrustPlan compares the desired clients with the server's trust store and projects.
// It fails, before anything is written, when a client names a project the server lacks.
func NewTrustPlan(desired []*DesiredClient, current []api.Certificate, projects []string, opts PlanOptions) (*TrustPlan, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	var problems []string
	have := map[string]bool{}
	for _, p := range projects {
		have[p] = true
	}
	keep := map[string]bool{}
	for _, k := range opts.Keep {
		keep[k] = true
		keep[normalizeFingerprint(k)] = true
	}
	for _, d := range desired {
		if !d.present() {
			if keep[d.Name] || (d.Cert != nil && keep[d.Cert.Fingerprint]) {
				problems = append(problems, fmt.Sprintf("client %q: state is absent but keep names it", d.Name))
			}
			continue
		}
		for _, p := range d.Projects {
			if !have[p] {
				problems = append(problems, fmt.Sprintf("client %q: project %q does not exist on this server (it has: %s)", d.Name, p, strings.Join(sorted(projects), ", ")))
			}
		}
	}
	servers := map[string]string{}
	for _, c := range current {
		if c.Type == api.CertificateTypeServer {
			servers[strings.ToLower(c.Fingerprint)] = c.Name
		}
	}
	for _, d := range desired {
		if d.present() && servers[d.Cert.Fingerprint] != "" {
			problems = append(problems, fmt.Sprintf("client %q: this certificate is trusted as the server (cluster member) certificate %q; a client needs its own",
				d.Name, servers[d.Cert.Fingerprint]))
		}
	}
	if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}

	plan := &TrustPlan{}
	entries := make([]*Entry, len(current))
	byFP := map[string]int{}
	byName := map[string][]int{}
	for i, c := range current {
		e := entryFromAPI(c)
		entries[i] = e
		plan.Before = append(plan.Before, *e)
		byFP[e.Fingerprint] = i
		byName[e.Name] = append(byName[e.Name], i)
	}
	sortEntries(plan.Before)
	claimed := map[int]*DesiredClient{}
	match := map[*DesiredClient]int{}
	presentName := map[string]*DesiredClient{}
	absentName := map[string]bool{}
	absentFP := map[string]bool{}
	// Equality is by fingerprint: a certificate already trusted belongs to the client
	// that names it, whatever name it carries now (a rename, or a swap of two names).
	for _, d := range desired {
		if !d.present() {
			absentName[d.Name] = true
			if d.Cert != nil {
				absentFP[d.Cert.Fingerprint] = true
			}
			continue
		}
		presentName[d.Name] = d
		if i, ok := byFP[d.Cert.Fingerprint]; ok && entries[i].Type != api.CertificateTypeServer {
			claimed[i] = d
			match[d] = i
		}
	}
	// Identity is the name: a client whose certificate is not trusted yet takes over the
	// entry with its name (a rotation).
	for _, d := range desired {
		if !d.present() {
			continue
		}
		if _, ok := match[d]; ok {
			continue
		}
		cands := slices.Clone(byName[d.Name])
		sort.Slice(cands, func(a, b int) bool { return entries[cands[a]].Fingerprint < entries[cands[b]].Fingerprint })
		for _, i := range cands {
			if _, taken := claimed[i]; !taken && entries[i].Type != api.CertificateTypeServer {
				claimed[i] = d
				match[d] = i
				break
			}
		}
	}

	for _, d := range desired {
		if !d.present() {
			continue
		}
		want := Entry{
			Name: d.Name, Fingerprint: d.Cert.Fingerprint, Type: d.Type, Restricted: d.Restricted,
			Projects: d.Projects, Description: d.Description, Managed: true,
			pem: d.Cert.PEM(), notAfter: d.Cert.NotAfter, NotAfter: rfc3339(d.Cert.NotAfter),
		}
		i, ok := match[d]
		if !ok {
			plan.Items = append(plan.Items, &PlanItem{Op: OpAdd, Name: d.Name, Fingerprint: want.Fingerprint,
				Reason: "not trusted yet", want: want})
			continue
		}
		e := entries[i]
		switch {
		case e.Fingerprint != want.Fingerprint && e.Type != want.Type:
			plan.Items = append(plan.Items, &PlanItem{Op: OpReplace, Name: d.Name, Fingerprint: want.Fingerprint,
				OldFingerprint: e.Fingerprint, Method: "delete+add", target: e.Fingerprint, want: want,
				Reason: fmt.Sprintf("new certificate (rotation, %s replaces %s) and type %s → %s", short(want.Fingerprint), short(e.Fingerprint), e.Type, want.Type)})
		case e.Fingerprint != want.Fingerprint:
			plan.Items = append(plan.Items, &PlanItem{Op: OpReplace, Name: d.Name, Fingerprint: want.Fingerprint,
				OldFingerprint: e.Fingerprint, Method: "put", target: e.Fingerprint, want: want,
				Reason: fmt.Sprintf("new certificate (rotation, %s replaces %s)", short(want.Fingerprint), short(e.Fingerprint))})
		case e.Type != want.Type:
			plan.Items = append(plan.Items, &PlanItem{Op: OpReplace, Name: d.Name, Fingerprint: want.Fingerprint,
				OldFingerprint: e.Fingerprint, Method: "delete+add", target: e.Fingerprint, want: want,
				Reason: fmt.Sprintf("type %s → %s (the API cannot change a type: delete and add)", e.Type, want.Type)})
		default:
			want.pem = e.pem // unchanged certificate: send back exactly what the server stores
			changes := fieldChanges(e, &want)
			if e.Name != want.Name {
				reason := fmt.Sprintf("the same certificate is trusted as %q", e.Name)
				if len(changes) > 0 {
					reason += "; " + strings.Join(changes, "; ")
				}
				plan.Items = append(plan.Items, &PlanItem{Op: OpRename, Name: d.Name, OldName: e.Name,
					Fingerprint: want.Fingerprint, target: e.Fingerprint, want: want, Reason: reason})
			} else if len(changes) > 0 {
				plan.Items = append(plan.Items, &PlanItem{Op: OpUpdate, Name: d.Name, Fingerprint: want.Fingerprint,
					target: e.Fingerprint, want: want, Reason: strings.Join(changes, "; ")})
			}
		}
	}

	var unmanaged []string
	var keepUsed = map[string]bool{}
	for i, e := range entries {
		if _, ok := claimed[i]; ok {
			continue
		}
		if e.Type == api.CertificateTypeServer {
			continue // cluster members' certificates are not client trust
		}
		remove := func(reason string) {
			plan.Items = append(plan.Items, &PlanItem{Op: OpRemove, Name: e.Name, Fingerprint: e.Fingerprint,
				target: e.Fingerprint, Reason: reason})
		}
		switch {
		case presentName[e.Name] != nil:
			// The name is managed: any other certificate under it is an old one.
			remove(fmt.Sprintf("an older certificate of client %q (the client is trusted as %s)", e.Name, short(presentName[e.Name].Cert.Fingerprint)))
		case absentName[e.Name]:
			remove("state is absent")
		case absentFP[e.Fingerprint]:
			remove("state is absent (matched by certificate)")
		case keep[e.Name] || keep[e.Fingerprint]:
			keepUsed[e.Name], keepUsed[e.Fingerprint] = true, true
		case opts.Protected[e.Fingerprint] != "":
			// never pruned, never reported as stray
		case opts.Prune:
			remove("not in clients (prune)")
		default:
			unmanaged = append(unmanaged, fmt.Sprintf("%q (%s)", e.Name, short(e.Fingerprint)))
		}
	}
	if len(unmanaged) > 0 {
		sort.Strings(unmanaged)
		what := "1 trust entry not managed by this task stays"
		if len(unmanaged) > 1 {
			what = fmt.Sprintf("%d trust entries not managed by this task stay", len(unmanaged))
		}
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("%s trusted (prune is off): %s; name them in clients or keep, or set prune to remove them",
			what, strings.Join(unmanaged, ", ")))
	}
	if opts.Prune {
		for _, k := range opts.Keep {
			if !keepUsed[k] && !keepUsed[normalizeFingerprint(k)] && presentName[k] == nil {
				plan.Warnings = append(plan.Warnings, fmt.Sprintf("keep: %q matches no trust entry", k))
			}
		}
	}

	sort.SliceStable(plan.Items, func(a, b int) bool {
		x, y := plan.Items[a], plan.Items[b]
		if x.phase() != y.phase() {
			return x.phase() < y.phase()
		}
		if x.Name != y.Name {
			return x.Name < y.Name
		}
		return x.Fingerprint < y.Fingerprint
	})
	for _, it := range plan.Items {
		it.Status = StatusPlanned
	}
	plan.After = predict(plan.Before, plan.Items, desired)
	plan.Warnings = append(plan.Warnings, adviceWarnings(desired, plan.After, opts)...)
	return plan, nil
}

// predict applies the plan to a copy of the trust store.
func predict(before []Entry, items []*PlanItem, desired []*DesiredClient) []Entry {
	byFP := map[string]Entry{}
	for _, e := range before {
		byFP[e.Fingerprint] = e
	}
	for _, it := range items {
		switch it.Op {
		case OpAdd:
			byFP[it.want.Fingerprint] = it.want
		case OpUpdate, OpRename, OpReplace:
			delete(byFP, it.target)
			byFP[it.want.Fingerprint] = it.want
		case OpRemove:
			delete(byFP, it.target)
		}
	}
	out := make([]Entry, 0, len(byFP))
	for _, e := range byFP {
		out = append(out, e)
	}
	markManaged(out, desired)
	sortEntries(out)
	return out
}

// markManaged sets Managed on the entries that are one of the present clients.
func markManaged(entries []Entry, desired []*DesiredClient) {
	managed := map[string]bool{}
	for _, d := range desired {
		if d.present() {
			managed[d.Cert.Fingerprint] = true
		}
	}
	for i := range entries {
		entries[i].Managed = managed[entries[i].Fingerprint]
	}
}

func adviceWarnings(desired []*DesiredClient, after []Entry, opts PlanOptions) []string {
	var out []string
	for _, d := range desired {
		if !d.present() {
			continue
		}
		if !d.Restricted && len(d.Projects) > 0 {
			out = append(out, fmt.Sprintf("client %q: projects are ignored while restricted is false (the client can reach every project)", d.Name))
		}
		if d.Restricted && len(d.Projects) == 0 {
			out = append(out, fmt.Sprintf("client %q: restricted with no projects: the client can reach no project", d.Name))
		}
	}
	if opts.ExpiryWarningDays > 0 {
		horizon := opts.Now.Add(time.Duration(opts.ExpiryWarningDays) * 24 * time.Hour)
		for _, e := range after {
			if e.notAfter.IsZero() || e.notAfter.After(horizon) {
				continue
			}
			who := fmt.Sprintf("client %q", e.Name)
			if !e.Managed {
				who = fmt.Sprintf("unmanaged trust entry %q", e.Name)
			}
			if e.notAfter.Before(opts.Now) {
				out = append(out, fmt.Sprintf("%s: certificate %s expired on %s", who, short(e.Fingerprint), day(e.notAfter)))
			} else {
				days := int(e.notAfter.Sub(opts.Now).Hours() / 24)
				out = append(out, fmt.Sprintf("%s: certificate %s expires on %s (in %d days; expiry_warning_days is %d)", who, short(e.Fingerprint), day(e.notAfter), days, opts.ExpiryWarningDays))
			}
		}
	}
	return out
}

func fieldChanges(have, want *Entry) []string {
	var out []string
	if have.Description != want.Description {
		out = append(out, fmt.Sprintf("description %q → %q", have.Description, want.Description))
	}
	if have.Restricted != want.Restricted {
		out = append(out, fmt.Sprintf("restricted %t → %t", have.Restricted, want.Restricted))
	}
	if !slices.Equal(sorted(have.Projects), sorted(want.Projects)) {
		out = append(out, fmt.Sprintf("projects [%s] → [%s]", strings.Join(sorted(have.Projects), ", "), strings.Join(sorted(want.Projects), ", ")))
	}
	return out
}

func entryFromAPI(c api.Certificate) *Entry {
	e := &Entry{
		Name: c.Name, Fingerprint: strings.ToLower(c.Fingerprint), Type: c.Type, Restricted: c.Restricted,
		Projects: sorted(c.Projects), Description: c.Description, pem: c.Certificate,
	}
	if cert, err := ParseCertificate(c.Certificate); err == nil {
		e.notAfter = cert.NotAfter
		e.NotAfter = rfc3339(cert.NotAfter)
	}
	return e
}

// EntriesFromAPI turns the server's trust store into audit entries, marking as managed
// those that are one of the desired clients.
func EntriesFromAPI(certs []api.Certificate, desired []*DesiredClient) []Entry {
	out := make([]Entry, 0, len(certs))
	for _, c := range certs {
		out = append(out, *entryFromAPI(c))
	}
	markManaged(out, desired)
	sortEntries(out)
	return out
}

func sortEntries(es []Entry) {
	sort.Slice(es, func(a, b int) bool {
		if es[a].Name != es[b].Name {
			return es[a].Name < es[b].Name
		}
		return es[a].Fingerprint < es[b].Fingerprint
	})
}

// normalizeFingerprint accepts the forms people paste: upper case, colon-separated.
func normalizeFingerprint(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
}

func sorted(in []string) []string {
	out := slices.Clone(in)
	if out == nil {
		out = []string{}
	}
	sort.Strings(out)
	return out
}

func short(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02") }

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }
