package incustrust

import (
	"fmt"
	"slices"

	"github.com/lxc/incus/v6/shared/api"
)

// AuditReader is what the read-only audit needs of a server: the trust store, the
// projects and which trust store it is (cluster members share one).
type AuditReader interface {
	GetServer() (*api.Server, string, error)
	GetCertificates() ([]api.Certificate, error)
	GetProjectNames() ([]string, error)
}

// AuditResult is the audit mode's answer: every trust entry, the server's projects and
// the store's identity. Nothing is written to get it.
type AuditResult struct {
	Server       ServerIdentity `json:"server"`
	Certificates []Entry        `json:"certificates"`
	Projects     []string       `json:"projects"`
}

// Audit reads the whole trust store, marking as managed the entries whose name is one of
// managedNames (the inventory's incus_trusted_clients: the certificates themselves are
// the controller's business, an audit must not fail on an expired one).
func Audit(srv AuditReader, managedNames []string) (*AuditResult, error) {
	id, err := Identify(srv)
	if err != nil {
		return nil, err
	}
	certs, err := srv.GetCertificates()
	if err != nil {
		return nil, fmt.Errorf("cannot read the trust store: %v", err)
	}
	projects, err := srv.GetProjectNames()
	if err != nil {
		return nil, fmt.Errorf("cannot list projects: %v", err)
	}
	entries := EntriesFromAPI(certs, nil)
	for i := range entries {
		entries[i].Managed = slices.Contains(managedNames, entries[i].Name)
	}
	return &AuditResult{Server: id, Certificates: entries, Projects: sorted(projects)}, nil
}
