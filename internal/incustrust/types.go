package incustrust

// The data a trust plan works on: the desired clients, the trust store's entries, the
// plan's items, and the small helpers every file uses to show them.

import (
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
