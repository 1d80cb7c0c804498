package incustrust

import (
	"net"
	"os"
	"strings"
	"testing"

	incus "github.com/lxc/incus/v6/client"

	"github.com/incus-access/incus-access/internal/testlab"
)

var httpsMissing = "the lab daemon has no HTTPS listener (LAB_HOST1_ADDR / LAB_INCUS_HTTPS_PORT unset or core.https_address empty)"

// labHTTPSServer is the lab daemon's HTTPS endpoint and the certificate it presents.
type labHTTPSServer struct {
	URL        string
	ServerCert string
}

// labHTTPS returns the HTTPS endpoint of the daemon behind srv, or nil when it has none.
func labHTTPS(t *testing.T, srv incus.InstanceServer) *labHTTPSServer {
	t.Helper()
	addr, port := os.Getenv("LAB_HOST1_ADDR"), os.Getenv("LAB_INCUS_HTTPS_PORT")
	info, _, err := srv.GetServer()
	if err != nil {
		t.Fatal(err)
	}
	if addr == "" || port == "" || info.Config["core.https_address"] == "" {
		return nil
	}
	return &labHTTPSServer{URL: "https://" + net.JoinHostPort(addr, port), ServerCert: info.Environment.Certificate}
}

// auth says how the server sees a client certificate: "trusted" or "untrusted".
func (h *labHTTPSServer) auth(t *testing.T, c testlab.IncusClientCert) string {
	t.Helper()
	cli, err := incus.ConnectIncus(h.URL, &incus.ConnectionArgs{TLSClientCert: c.CertPEM, TLSClientKey: c.KeyPEM, TLSServerCert: h.ServerCert})
	if err != nil {
		t.Fatalf("connect to %s: %v", h.URL, err)
	}
	defer cli.Disconnect()
	info, _, err := cli.GetServer()
	if err != nil {
		t.Fatal(err)
	}
	return info.Auth
}

// Over HTTPS the module connects with its own client certificate; prune never removes
// that certificate, and an untrusted one is refused with a clear message.
func TestLabHTTPSConnectionProtectsOwnCertificate(t *testing.T) {
	srv, _ := testlab.IncusHost1(t)
	h := labHTTPS(t, srv)
	if h == nil {
		t.Skip(httpsMissing)
	}
	pre := testlab.UniqueIncusPrefix()
	admin := testlab.NewIncusClientCert(t, "operator")
	testlab.TrustIncusClient(t, srv, pre+"operator", admin)
	conn := Connection{URL: h.URL, ClientCert: admin.CertPEM, ClientKey: admin.KeyPEM, ServerCert: h.ServerCert}
	remote, err := conn.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Disconnect()
	keep := testlab.IncusTrustedFingerprints(t, srv)
	var keepOthers []string
	for _, fp := range keep {
		if fp != admin.FP {
			keepOthers = append(keepOthers, fp)
		}
	}
	c := testlab.NewIncusClientCert(t, "ci")
	plan := reconcile(t, remote, []Client{{Name: pre + "ci", Certificate: c.CertPEM, Type: "client"}},
		PlanOptions{Prune: true, Keep: keepOthers, Protected: map[string]string{conn.ClientFingerprint(): "own"}})
	if ops(plan) != "add "+pre+"ci" {
		t.Fatalf("plan over HTTPS = %s (own certificate must not be pruned)", ops(plan))
	}
	if _, _, err := srv.GetCertificate(admin.FP); err != nil {
		t.Fatalf("own certificate gone: %v", err)
	}

	stranger := testlab.NewIncusClientCert(t, "stranger")
	_, err = Connection{URL: h.URL, ClientCert: stranger.CertPEM, ClientKey: stranger.KeyPEM, ServerCert: h.ServerCert}.Connect()
	if err == nil || !strings.Contains(err.Error(), "does not trust client_cert") || strings.Contains(err.Error(), strings.Split(stranger.KeyPEM, "\n")[1]) {
		t.Fatalf("untrusted client: %v", err)
	}
}
