package incustrust

import (
	"errors"
	"strings"
	"testing"

	"github.com/lxc/incus/v6/shared/api"

	"github.com/incus-access/incus-access/internal/testlab"
)

type auditServer struct {
	certs    []api.Certificate
	projects []string
	err      error
}

func (s auditServer) GetServer() (*api.Server, string, error) {
	srv := &api.Server{}
	srv.Environment.CertificateFingerprint = "AB:CD"
	srv.Environment.ServerClustered = true
	srv.Environment.ServerName = "m1"
	return srv, "", nil
}
func (s auditServer) GetCertificates() ([]api.Certificate, error) { return s.certs, s.err }
func (s auditServer) GetProjectNames() ([]string, error)          { return s.projects, nil }

func TestAuditListsEveryEntryAndMarksManagedByName(t *testing.T) {
	a, x := testlab.NewIncusClientCert(t, "a"), testlab.NewIncusClientCert(t, "x")
	srv := auditServer{
		certs: []api.Certificate{stored("stray", x, "client", false, nil, "by hand"),
			stored("a", a, "client", true, []string{"prod", "default"}, "")},
		projects: []string{"prod", "default"},
	}
	res, err := Audit(srv, []string{"a", "not-there"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Server.Fingerprint != "abcd" || !res.Server.Clustered || res.Server.Member != "m1" {
		t.Fatalf("server: %+v", res.Server)
	}
	if strings.Join(res.Projects, ",") != "default,prod" {
		t.Fatalf("projects: %v", res.Projects)
	}
	if len(res.Certificates) != 2 || res.Certificates[0].Name != "a" || !res.Certificates[0].Managed ||
		res.Certificates[1].Name != "stray" || res.Certificates[1].Managed {
		t.Fatalf("entries: %+v", res.Certificates)
	}
	if e := res.Certificates[0]; e.NotAfter == "" || strings.Join(e.Projects, ",") != "default,prod" || !e.Restricted {
		t.Fatalf("entry a: %+v", e)
	}
}

func TestAuditNamesTheFailedRead(t *testing.T) {
	_, err := Audit(auditServer{err: errors.New("boom")}, nil)
	if err == nil || !strings.Contains(err.Error(), "cannot read the trust store: boom") {
		t.Fatalf("err: %v", err)
	}
}
