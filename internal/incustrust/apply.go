package incustrust

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/lxc/incus/v6/shared/api"
)

// TrustStore is the part of the Incus API the module uses; incus.InstanceServer has it.
type TrustStore interface {
	GetCertificates() ([]api.Certificate, error)
	GetCertificate(fingerprint string) (*api.Certificate, string, error)
	GetProjectNames() ([]string, error)
	CreateCertificate(certificate api.CertificatesPost) error
	UpdateCertificate(fingerprint string, certificate api.CertificatePut, ETag string) error
	DeleteCertificate(fingerprint string) error
}

// ApplyError says which plan item failed; the items carry applied / failed / not_applied.
type ApplyError struct {
	Failed     *PlanItem
	Applied    []*PlanItem
	NotApplied []*PlanItem
}

func (e *ApplyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s failed: %s. ", describe(e.Failed), e.Failed.Error)
	b.WriteString("Applied before the failure: ")
	b.WriteString(describeAll(e.Applied))
	b.WriteString(". Not applied: ")
	b.WriteString(describeAll(e.NotApplied))
	b.WriteString(". Run again once the cause is fixed: the plan is recomputed from the trust store as it is now")
	return b.String()
}

func describe(it *PlanItem) string {
	switch it.Op {
	case OpRename:
		return fmt.Sprintf("rename %q → %q (%s)", it.OldName, it.Name, short(it.Fingerprint))
	case OpReplace:
		return fmt.Sprintf("replace %q (%s → %s)", it.Name, short(it.OldFingerprint), short(it.Fingerprint))
	}
	return fmt.Sprintf("%s %q (%s)", it.Op, it.Name, short(it.Fingerprint))
}

func describeAll(items []*PlanItem) string {
	if len(items) == 0 {
		return "none"
	}
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = describe(it)
	}
	return strings.Join(parts, ", ")
}

// Apply executes the plan's items in order. It stops at the first failure and returns an
// *ApplyError; every item's Status then says whether it was applied. A change another
// writer made first (409 on an add of the same certificate with the wanted settings, 404
// on a delete of an entry already gone) is StatusAlreadyDone, not a failure.
func (p *TrustPlan) Apply(store TrustStore) error {
	for i, it := range p.Items {
		err := applyItem(store, it)
		if errors.Is(err, errAlreadyDone) {
			it.Status = StatusAlreadyDone
			continue
		}
		if err != nil {
			it.Status = StatusFailed
			it.Error = err.Error()
			ae := &ApplyError{Failed: it}
			for _, done := range p.Items[:i] {
				if done.Status == StatusApplied {
					ae.Applied = append(ae.Applied, done)
				}
			}
			ae.NotApplied = append(ae.NotApplied, it)
			for _, rest := range p.Items[i+1:] {
				rest.Status = StatusNotApplied
				ae.NotApplied = append(ae.NotApplied, rest)
			}
			return ae
		}
		it.Status = StatusApplied
	}
	return nil
}

// ApplyRechecked applies the plan; when an item fails it asks replan for a plan from the
// trust store as it is now (another writer may have changed it in between) and applies
// that once. p.Items then holds what happened: the first pass's applied items, the items
// the store no longer needed (StatusAlreadyDone), and the second pass's items. The error
// is the second pass's, listing every item applied in either pass.
func (p *TrustPlan) ApplyRechecked(store TrustStore, replan func() (*TrustPlan, error)) error {
	err := p.Apply(store)
	var first *ApplyError
	if !errors.As(err, &first) {
		return err
	}
	again, rerr := replan()
	if rerr != nil {
		return err
	}
	second := again.Apply(store)
	var kept []*PlanItem
	for _, it := range p.Items {
		switch {
		case it.Status == StatusApplied || it.Status == StatusAlreadyDone:
			kept = append(kept, it)
		case !slices.ContainsFunc(again.Items, it.same):
			// The store as re-read no longer needs it: another writer made the change.
			it.Status, it.Error = StatusAlreadyDone, ""
			kept = append(kept, it)
		}
	}
	p.Items = append(kept, again.Items...)
	p.Warnings = append(p.Warnings, fmt.Sprintf("%s failed (%s); the trust store was read again and the plan rechecked once (another run changing it at the same time?)",
		describe(first.Failed), first.Failed.Error))
	var ae *ApplyError
	if !errors.As(second, &ae) {
		return second
	}
	ae.Applied = nil
	for _, it := range p.Items {
		if it.Status == StatusApplied {
			ae.Applied = append(ae.Applied, it)
		}
	}
	return ae
}

// same reports whether two plan items make the same change.
func (it *PlanItem) same(o *PlanItem) bool {
	return it.Op == o.Op && it.Name == o.Name && it.Fingerprint == o.Fingerprint && it.target == o.target
}

// errAlreadyDone marks a change the trust store already has (another writer made it).
var errAlreadyDone = errors.New("already done")

func applyItem(store TrustStore, it *PlanItem) error {
	switch it.Op {
	case OpAdd:
		return createOrFind(store, it.want)
	case OpUpdate, OpRename:
		return store.UpdateCertificate(it.target, put(it.want), "")
	case OpReplace:
		if it.Method == "put" {
			// The API swaps the certificate in place: the old fingerprint is gone at once.
			return store.UpdateCertificate(it.target, put(it.want), "")
		}
		if it.target == it.want.Fingerprint {
			// Same certificate, new type: it must leave before it can come back.
			if err := store.DeleteCertificate(it.target); err != nil && !api.StatusErrorCheck(err, http.StatusNotFound) {
				return err
			}
			if err := createOrFind(store, it.want); err != nil && !errors.Is(err, errAlreadyDone) {
				return fmt.Errorf("the entry was deleted but adding it back as %s failed, so %q is not trusted now: %w", it.want.Type, it.Name, err)
			}
			return nil
		}
		// New certificate and new type: add the new one before the old one goes.
		if err := createOrFind(store, it.want); err != nil && !errors.Is(err, errAlreadyDone) {
			return err
		}
		if err := store.DeleteCertificate(it.target); err != nil && !api.StatusErrorCheck(err, http.StatusNotFound) {
			return fmt.Errorf("the new certificate was added but removing the old one (%s) failed: %w", short(it.target), err)
		}
		return nil
	case OpRemove:
		err := store.DeleteCertificate(it.target)
		if api.StatusErrorCheck(err, http.StatusNotFound) {
			return errAlreadyDone
		}
		return err
	}
	return fmt.Errorf("unknown plan operation %q", it.Op)
}

// createOrFind adds an entry; a 409 (the certificate is trusted already) is
// errAlreadyDone when the entry there has exactly the wanted settings.
func createOrFind(store TrustStore, want Entry) error {
	err := create(store, want)
	if !api.StatusErrorCheck(err, http.StatusConflict) {
		return err
	}
	have, _, gerr := store.GetCertificate(want.Fingerprint)
	if gerr != nil {
		return fmt.Errorf("%w (and reading the entry back failed: %v)", err, gerr)
	}
	h := entryFromAPI(*have)
	if h.Name == want.Name && h.Type == want.Type && len(fieldChanges(h, &want)) == 0 {
		return errAlreadyDone
	}
	return fmt.Errorf("%w: it is trusted already as %q (type %s) with other settings", err, h.Name, h.Type)
}

func put(e Entry) api.CertificatePut {
	projects := e.Projects
	if projects == nil {
		projects = []string{}
	}
	return api.CertificatePut{
		Name: e.Name, Type: e.Type, Restricted: e.Restricted, Projects: projects,
		Description: e.Description, Certificate: e.pem,
	}
}

// create adds an entry; POST wants the certificate as base64 DER, not PEM.
func create(store TrustStore, e Entry) error {
	cert, err := ParseCertificate(e.pem)
	if err != nil {
		return err
	}
	body := put(e)
	body.Certificate = base64DER(cert.DER)
	return store.CreateCertificate(api.CertificatesPost{CertificatePut: body})
}
