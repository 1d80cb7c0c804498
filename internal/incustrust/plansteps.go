package incustrust

// The steps of NewTrustPlan, in the order it runs them. Each takes and returns data.

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lxc/incus/v6/shared/api"
)

// keepSet holds the keep option's names and fingerprints, each also in the form
// fingerprints are compared in (a pasted fingerprint may be upper case, with colons).
func keepSet(keep []string) map[string]bool {
	set := map[string]bool{}
	for _, k := range keep {
		set[k] = true
		set[normalizeFingerprint(k)] = true
	}
	return set
}

// serverProblems are the reasons the desired list cannot be planned against this server:
// an absent client that keep names, a project the server lacks, a certificate the server
// trusts as a cluster member's.
func serverProblems(desired []*DesiredClient, current []api.Certificate, projects []string, keep map[string]bool) []string {
	var problems []string
	have := map[string]bool{}
	for _, p := range projects {
		have[p] = true
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
	return problems
}

// readEntries turns the server's trust store into entries, in the server's order.
func readEntries(current []api.Certificate) []*Entry {
	entries := make([]*Entry, len(current))
	for i, c := range current {
		entries[i] = entryFromAPI(c)
	}
	return entries
}

// snapshot is the trust store as TrustPlan.Before shows it: sorted, nil when empty.
func snapshot(entries []*Entry) []Entry {
	var out []Entry
	for _, e := range entries {
		out = append(out, *e)
	}
	sortEntries(out)
	return out
}

// matchClients pairs each present client with the existing entry it takes over; a client
// without a pair is added. Cluster members' (server) entries are never taken over.
func matchClients(desired []*DesiredClient, entries []*Entry) map[*DesiredClient]*Entry {
	byFP := map[string]*Entry{}
	byName := map[string][]*Entry{}
	for _, e := range entries {
		byFP[e.Fingerprint] = e
		byName[e.Name] = append(byName[e.Name], e)
	}
	match := map[*DesiredClient]*Entry{}
	claimed := map[*Entry]bool{}
	// Equality is by fingerprint: a certificate already trusted belongs to the client
	// that names it, whatever name it carries now (a rename, or a swap of two names).
	for _, d := range desired {
		if !d.present() {
			continue
		}
		if e, ok := byFP[d.Cert.Fingerprint]; ok && e.Type != api.CertificateTypeServer {
			claimed[e] = true
			match[d] = e
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
		sort.Slice(cands, func(a, b int) bool { return cands[a].Fingerprint < cands[b].Fingerprint })
		for _, e := range cands {
			if !claimed[e] && e.Type != api.CertificateTypeServer {
				claimed[e] = true
				match[d] = e
				break
			}
		}
	}
	return match
}

// clientItems are the items that bring each present client to its desired entry, in the
// clients' order.
func clientItems(desired []*DesiredClient, match map[*DesiredClient]*Entry) []*PlanItem {
	var items []*PlanItem
	for _, d := range desired {
		if !d.present() {
			continue
		}
		if it := clientItem(wantedEntry(d), match[d]); it != nil {
			items = append(items, it)
		}
	}
	return items
}

// wantedEntry is the trust entry a present client should have.
func wantedEntry(d *DesiredClient) Entry {
	return Entry{
		Name: d.Name, Fingerprint: d.Cert.Fingerprint, Type: d.Type, Restricted: d.Restricted,
		Projects: d.Projects, Description: d.Description, Managed: true,
		pem: d.Cert.PEM(), notAfter: d.Cert.NotAfter, NotAfter: rfc3339(d.Cert.NotAfter),
	}
}

// clientItem is the one item that turns have (the matched entry, nil if none) into
// want, or nil when have is already what is wanted.
func clientItem(want Entry, have *Entry) *PlanItem {
	if have == nil {
		return &PlanItem{Op: OpAdd, Name: want.Name, Fingerprint: want.Fingerprint,
			Reason: "not trusted yet", want: want, Status: StatusPlanned}
	}
	replace := &PlanItem{Op: OpReplace, Name: want.Name, Fingerprint: want.Fingerprint,
		OldFingerprint: have.Fingerprint, target: have.Fingerprint, want: want, Status: StatusPlanned}
	switch {
	case have.Fingerprint != want.Fingerprint && have.Type != want.Type:
		replace.Method = "delete+add"
		replace.Reason = fmt.Sprintf("new certificate (rotation, %s replaces %s) and type %s → %s", short(want.Fingerprint), short(have.Fingerprint), have.Type, want.Type)
		return replace
	case have.Fingerprint != want.Fingerprint:
		replace.Method = "put"
		replace.Reason = fmt.Sprintf("new certificate (rotation, %s replaces %s)", short(want.Fingerprint), short(have.Fingerprint))
		return replace
	case have.Type != want.Type:
		replace.Method = "delete+add"
		replace.Reason = fmt.Sprintf("type %s → %s (the API cannot change a type: delete and add)", have.Type, want.Type)
		return replace
	}
	want.pem = have.pem // unchanged certificate: send back exactly what the server stores
	changes := fieldChanges(have, &want)
	if have.Name != want.Name {
		reason := fmt.Sprintf("the same certificate is trusted as %q", have.Name)
		if len(changes) > 0 {
			reason += "; " + strings.Join(changes, "; ")
		}
		return &PlanItem{Op: OpRename, Name: want.Name, OldName: have.Name,
			Fingerprint: want.Fingerprint, target: have.Fingerprint, want: want, Reason: reason, Status: StatusPlanned}
	}
	if len(changes) > 0 {
		return &PlanItem{Op: OpUpdate, Name: want.Name, Fingerprint: want.Fingerprint,
			target: have.Fingerprint, want: want, Reason: strings.Join(changes, "; "), Status: StatusPlanned}
	}
	return nil
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

// clientNames is the desired list as stray entries are judged against it.
type clientNames struct {
	present  map[string]*DesiredClient // name → present client
	absent   map[string]bool           // names of absent clients
	absentFP map[string]bool           // certificates of absent clients
}

func namesOf(desired []*DesiredClient) clientNames {
	n := clientNames{present: map[string]*DesiredClient{}, absent: map[string]bool{}, absentFP: map[string]bool{}}
	for _, d := range desired {
		if d.present() {
			n.present[d.Name] = d
			continue
		}
		n.absent[d.Name] = true
		if d.Cert != nil {
			n.absentFP[d.Cert.Fingerprint] = true
		}
	}
	return n
}

// strayFate is what happens to an entry no present client took over.
type strayFate int

const (
	strayRemoved   strayFate = iota // a remove item, with the reason
	strayKept                       // keep names it
	strayProtected                  // the module's own certificate: never pruned, never reported
	strayUnmanaged                  // prune is off: it stays, with a warning
	strayServer                     // a cluster member's certificate, not client trust
)

// judgeStray decides the fate of one entry no present client took over; reason is set
// for strayRemoved.
func judgeStray(e *Entry, names clientNames, keep map[string]bool, opts PlanOptions) (fate strayFate, reason string) {
	switch {
	case e.Type == api.CertificateTypeServer:
		return strayServer, ""
	case names.present[e.Name] != nil:
		// The name is managed: any other certificate under it is an old one.
		return strayRemoved, fmt.Sprintf("an older certificate of client %q (the client is trusted as %s)", e.Name, short(names.present[e.Name].Cert.Fingerprint))
	case names.absent[e.Name]:
		return strayRemoved, "state is absent"
	case names.absentFP[e.Fingerprint]:
		return strayRemoved, "state is absent (matched by certificate)"
	case keep[e.Name] || keep[e.Fingerprint]:
		return strayKept, ""
	case opts.Protected[e.Fingerprint] != "":
		return strayProtected, ""
	case opts.Prune:
		return strayRemoved, "not in clients (prune)"
	}
	return strayUnmanaged, ""
}

// strays is every entry no present client took over, by fate.
type strays struct {
	removals  []*PlanItem     // in the server's order
	kept      map[string]bool // names and fingerprints of the entries keep spared
	unmanaged []*Entry        // in the server's order
}

// sortStrays judges every entry that no present client took over.
func sortStrays(entries []*Entry, match map[*DesiredClient]*Entry, names clientNames, keep map[string]bool, opts PlanOptions) strays {
	claimed := map[*Entry]bool{}
	for _, e := range match {
		claimed[e] = true
	}
	s := strays{kept: map[string]bool{}}
	for _, e := range entries {
		if claimed[e] {
			continue
		}
		switch fate, reason := judgeStray(e, names, keep, opts); fate {
		case strayRemoved:
			s.removals = append(s.removals, &PlanItem{Op: OpRemove, Name: e.Name, Fingerprint: e.Fingerprint,
				target: e.Fingerprint, Reason: reason, Status: StatusPlanned})
		case strayKept:
			s.kept[e.Name], s.kept[e.Fingerprint] = true, true
		case strayUnmanaged:
			s.unmanaged = append(s.unmanaged, e)
		}
	}
	return s
}

// strayWarnings name the unmanaged entries left trusted, and, when pruning, each keep
// value that spared nothing (a typo would otherwise go unnoticed).
func strayWarnings(s strays, names clientNames, opts PlanOptions) []string {
	var out []string
	if len(s.unmanaged) > 0 {
		var listed []string
		for _, e := range s.unmanaged {
			listed = append(listed, fmt.Sprintf("%q (%s)", e.Name, short(e.Fingerprint)))
		}
		sort.Strings(listed)
		what := "1 trust entry not managed by this task stays"
		if len(listed) > 1 {
			what = fmt.Sprintf("%d trust entries not managed by this task stay", len(listed))
		}
		out = append(out, fmt.Sprintf("%s trusted (prune is off): %s; name them in clients or keep, or set prune to remove them",
			what, strings.Join(listed, ", ")))
	}
	if opts.Prune {
		for _, k := range opts.Keep {
			if !s.kept[k] && !s.kept[normalizeFingerprint(k)] && names.present[k] == nil {
				out = append(out, fmt.Sprintf("keep: %q matches no trust entry", k))
			}
		}
	}
	return out
}

// inExecutionOrder sorts the items so that a client never loses access in between: adds
// first, then in-place changes, then removals; by name, then fingerprint, within each.
func inExecutionOrder(items []*PlanItem) []*PlanItem {
	out := slices.Clone(items)
	sort.SliceStable(out, func(a, b int) bool {
		x, y := out[a], out[b]
		if x.phase() != y.phase() {
			return x.phase() < y.phase()
		}
		if x.Name != y.Name {
			return x.Name < y.Name
		}
		return x.Fingerprint < y.Fingerprint
	})
	return out
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

// adviceWarnings point out settings that do not do what they seem to (projects without
// restricted, restricted without projects) and certificates that expire soon after the
// plan.
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
