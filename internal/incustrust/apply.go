package incustrust

import (
	"fmt"
	"strings"

	"github.com/lxc/incus/v6/shared/api"
)

// TrustStore is the part of the Incus API the module uses; incus.InstanceServer has it.
type TrustStore interface {
	GetCertificates() ([]api.Certificate, error)
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
// *ApplyError; every item's Status then says whether it was applied.
func (p *TrustPlan) Apply(store TrustStore) error {
	for i, it := range p.Items {
		if err := applyItem(store, it); err != nil {
			it.Status = StatusFailed
			it.Error = err.Error()
			ae := &ApplyError{Failed: it}
			for _, done := range p.Items[:i] {
				ae.Applied = append(ae.Applied, done)
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

func applyItem(store TrustStore, it *PlanItem) error {
	switch it.Op {
	case OpAdd:
		return create(store, it.want)
	case OpUpdate, OpRename:
		return store.UpdateCertificate(it.target, put(it.want), "")
	case OpReplace:
		if it.Method == "put" {
			// The API swaps the certificate in place: the old fingerprint is gone at once.
			return store.UpdateCertificate(it.target, put(it.want), "")
		}
		if it.target == it.want.Fingerprint {
			// Same certificate, new type: it must leave before it can come back.
			if err := store.DeleteCertificate(it.target); err != nil && !api.StatusErrorCheck(err, 404) {
				return err
			}
			if err := create(store, it.want); err != nil {
				return fmt.Errorf("the entry was deleted but adding it back as %s failed, so %q is not trusted now: %w", it.want.Type, it.Name, err)
			}
			return nil
		}
		// New certificate and new type: add the new one before the old one goes.
		if err := create(store, it.want); err != nil {
			return err
		}
		if err := store.DeleteCertificate(it.target); err != nil {
			return fmt.Errorf("the new certificate was added but removing the old one (%s) failed: %w", short(it.target), err)
		}
		return nil
	case OpRemove:
		return store.DeleteCertificate(it.target)
	}
	return fmt.Errorf("unknown plan operation %q", it.Op)
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
