package incustrust

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/incus-access/incus-access/internal/ansible"
)

// Params are the module's options (modules/incus_trust/incus_trust.yml).
type Params struct {
	Clients           []Client          `ansible:"clients"`
	Prune             bool              `ansible:"prune"`
	Keep              []string          `ansible:"keep"`
	Socket            string            `ansible:"socket"`
	URL               string            `ansible:"url"`
	ClientCert        string            `ansible:"client_cert"`
	ClientKey         string            `ansible:"client_key"`
	ServerCert        string            `ansible:"server_cert"`
	ExpiryWarningDays int               `ansible:"expiry_warning_days"`
	Identify          bool              `ansible:"identify"`
	ClusterPeers      map[string]string `ansible:"cluster_peers"`
	InventoryHost     string            `ansible:"inventory_host"`
	Audit             bool              `ansible:"audit"`
	ManagedNames      []string          `ansible:"managed_names"`
}

// IdentityFact is the fact identify sets: the server's fingerprint, which cluster
// members share (the role gathers it from every host into cluster_peers).
const IdentityFact = "incus_trust_server_fingerprint"

// Change is one line of the added / updated / removed results.
type Change struct {
	Name           string `json:"name"`
	Fingerprint    string `json:"fingerprint"`
	OldFingerprint string `json:"old_fingerprint,omitempty"`
	OldName        string `json:"old_name,omitempty"`
	Reason         string `json:"reason"`
}

// Run is the incus_trust module: validate, read the trust store, plan, apply unless in
// check mode, report.
func Run(m *ansible.Context, p *Params) error {
	now := time.Now()
	conn := Connection{Socket: p.Socket, URL: p.URL, ClientCert: p.ClientCert, ClientKey: p.ClientKey, ServerCert: p.ServerCert}
	if p.Identify {
		return identify(m, conn)
	}
	if p.Audit {
		return audit(m, conn, p.ManagedNames)
	}
	desired, secrets, err := ValidateClients(p.Clients, now)
	m.AddSecret(secrets...)
	if err != nil {
		return err
	}
	if len(p.ClusterPeers) > 0 {
		if p.InventoryHost == "" {
			return errors.New("cluster_peers needs inventory_host (this host's name among them)")
		}
		by, err := ReconcilingHost(p.InventoryHost, p.ClusterPeers)
		if err != nil {
			return err
		}
		m.Set("reconciled_by", by)
		if by != p.InventoryHost {
			// Another host of this play shares the trust store and reconciles it.
			m.Set("added", []Change{})
			m.Set("updated", []Change{})
			m.Set("removed", []Change{})
			m.Set("operations", []PlanItem{})
			m.Msg = fmt.Sprintf("same cluster as %s: reconciled there", by)
			return nil
		}
	}
	store, err := conn.Connect()
	if err != nil {
		return err
	}
	defer store.Disconnect()

	opts := PlanOptions{Prune: p.Prune, Keep: p.Keep, ExpiryWarningDays: p.ExpiryWarningDays, Now: now}
	if fp := conn.ClientFingerprint(); fp != "" {
		opts.Protected = map[string]string{fp: "the certificate this module connects with"}
	}
	plan, err := Plan(store, desired, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", conn.Where(), err)
	}
	for _, w := range plan.Warnings {
		m.Warn("%s", w)
	}
	if m.DiffMode {
		before, after := DiffText(plan)
		m.AddDiff("trusted clients on "+conn.Where(), before, after)
	}

	var applyErr error
	if !m.CheckMode && plan.Changed() {
		warned := len(plan.Warnings)
		applyErr = plan.ApplyRechecked(store, func() (*TrustPlan, error) { return Plan(store, desired, opts) })
		for _, w := range plan.Warnings[warned:] {
			m.Warn("%s", w)
		}
	}
	report(m, plan)
	if m.CheckMode || !plan.Changed() {
		m.Set("certificates", plan.After)
	} else if certs, err := store.GetCertificates(); err == nil {
		m.Set("certificates", EntriesFromAPI(certs, desired))
	} else if applyErr == nil {
		m.Set("certificates", plan.After)
		m.Warn("could not read the trust store back after the changes (%v); certificates shows the planned state", err)
	}
	if applyErr != nil {
		var ae *ApplyError
		if errors.As(applyErr, &ae) {
			return fmt.Errorf("%s: %w", conn.Where(), ae)
		}
		return applyErr
	}
	m.Msg = summary(plan, m.CheckMode)
	return nil
}

// identify reports which trust store the server uses and sets it as a fact.
func identify(m *ansible.Context, conn Connection) error {
	store, err := conn.Connect()
	if err != nil {
		return err
	}
	defer store.Disconnect()
	id, err := Identify(store)
	if err != nil {
		return fmt.Errorf("%s: %w", conn.Where(), err)
	}
	m.Set("server", id)
	m.Set("ansible_facts", map[string]any{IdentityFact: id.Fingerprint})
	if id.Clustered {
		m.Msg = fmt.Sprintf("cluster member %s, cluster certificate %s", id.Member, short(id.Fingerprint))
	} else {
		m.Msg = fmt.Sprintf("standalone server %s, certificate %s", id.Member, short(id.Fingerprint))
	}
	return nil
}

// audit reads the trust store, the projects and the store's identity; changes nothing.
func audit(m *ansible.Context, conn Connection, managed []string) error {
	store, err := conn.Connect()
	if err != nil {
		return err
	}
	defer store.Disconnect()
	res, err := Audit(store, managed)
	if err != nil {
		return fmt.Errorf("%s: %w", conn.Where(), err)
	}
	m.Set("server", res.Server)
	m.Set("certificates", res.Certificates)
	m.Set("projects", res.Projects)
	m.Msg = fmt.Sprintf("%d trust entries, %d projects", len(res.Certificates), len(res.Projects))
	return nil
}

// Plan reads the trust store and the projects and builds the plan; nothing is written.
func Plan(store TrustStore, desired []*DesiredClient, opts PlanOptions) (*TrustPlan, error) {
	// The two reads are independent; on a converged run they are most of the time spent.
	var projects []string
	var projErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		projects, projErr = store.GetProjectNames()
	}()
	current, err := store.GetCertificates()
	<-done
	if err != nil {
		return nil, fmt.Errorf("cannot read the trust store: %v", err)
	}
	if projErr != nil {
		return nil, fmt.Errorf("cannot list projects: %v", projErr)
	}
	return NewTrustPlan(desired, current, projects, opts)
}

// report sets changed and the added / updated / removed / operations results: in check
// mode what would be done, otherwise what was done.
func report(m *ansible.Context, plan *TrustPlan) {
	added, updated, removed := []Change{}, []Change{}, []Change{}
	for _, it := range plan.Items {
		if it.Status != StatusPlanned && it.Status != StatusApplied {
			continue // failed, not applied, or made by another writer first
		}
		c := Change{Name: it.Name, Fingerprint: it.Fingerprint, OldFingerprint: it.OldFingerprint, OldName: it.OldName, Reason: it.Reason}
		switch it.Op {
		case OpAdd:
			added = append(added, c)
		case OpRemove:
			removed = append(removed, c)
		default:
			updated = append(updated, c)
		}
		m.Changed = true
	}
	m.Set("added", added)
	m.Set("updated", updated)
	m.Set("removed", removed)
	ops := make([]PlanItem, len(plan.Items))
	for i, it := range plan.Items {
		ops[i] = *it
	}
	m.Set("operations", ops)
}

func summary(plan *TrustPlan, check bool) string {
	count := map[Op]int{}
	elsewhere := 0
	for _, it := range plan.Items {
		if it.Status == StatusAlreadyDone {
			elsewhere++
			continue
		}
		count[it.Op]++
	}
	if len(count) == 0 {
		msg := fmt.Sprintf("trust store is up to date (%d entries)", len(plan.After))
		if elsewhere > 0 {
			msg += fmt.Sprintf("; %d change(s) were made by another writer at the same time", elsewhere)
		}
		return msg
	}
	var parts []string
	for _, op := range []Op{OpAdd, OpUpdate, OpRename, OpReplace, OpRemove} {
		if count[op] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", op, count[op]))
		}
	}
	verb := "applied"
	if check {
		verb = "would apply"
	}
	return fmt.Sprintf("%s: %s", verb, strings.Join(parts, ", "))
}

// DiffText renders the managed entries before and after the plan, one block per entry:
// every entry the plan touches, and the clients that stay as they are.
func DiffText(plan *TrustPlan) (before, after string) {
	touched := map[string]bool{}
	for _, it := range plan.Items {
		touched[it.target] = true
		touched[it.Fingerprint] = true
	}
	var b, a strings.Builder
	for _, e := range plan.Before {
		if touched[e.Fingerprint] || isManaged(plan.After, e.Fingerprint) {
			writeEntry(&b, e)
		}
	}
	for _, e := range plan.After {
		if e.Managed || touched[e.Fingerprint] {
			writeEntry(&a, e)
		}
	}
	return b.String(), a.String()
}

func isManaged(entries []Entry, fp string) bool {
	for _, e := range entries {
		if e.Fingerprint == fp {
			return e.Managed
		}
	}
	return false
}

func writeEntry(b *strings.Builder, e Entry) {
	fmt.Fprintf(b, "%s:\n  fingerprint: %s\n  type: %s\n  restricted: %t\n  projects: [%s]\n  description: %q\n",
		e.Name, e.Fingerprint, e.Type, e.Restricted, strings.Join(e.Projects, ", "), e.Description)
}
