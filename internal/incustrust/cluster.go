package incustrust

import (
	"fmt"
	"sort"

	"github.com/lxc/incus/v6/shared/api"
)

// ServerIdentity says which trust store a server uses: the members of one Incus cluster
// share one store and one cluster certificate, so they report the same Fingerprint.
type ServerIdentity struct {
	// Fingerprint is the certificate the server presents over HTTPS: the cluster
	// certificate on a cluster member, the server's own on a standalone server.
	Fingerprint string `json:"fingerprint"`
	Clustered   bool   `json:"clustered"`
	// Member is the server's cluster member name (its hostname when standalone).
	Member string `json:"member"`
}

// Identify reads the server's identity (GET /1.0).
func Identify(srv interface {
	GetServer() (*api.Server, string, error)
}) (ServerIdentity, error) {
	info, _, err := srv.GetServer()
	if err != nil {
		return ServerIdentity{}, fmt.Errorf("cannot read server information: %v", err)
	}
	return ServerIdentity{Fingerprint: normalizeFingerprint(info.Environment.CertificateFingerprint),
		Clustered: info.Environment.ServerClustered, Member: info.Environment.ServerName}, nil
}

// ReconcilingHost picks the inventory host through which self's trust store is
// reconciled in this run: of the hosts in peers (inventory host → server fingerprint,
// every host of the play) that share self's fingerprint, the first by name. A host with no
// known fingerprint reconciles its own store.
func ReconcilingHost(self string, peers map[string]string) (string, error) {
	fp, ok := peers[self]
	if !ok {
		return "", fmt.Errorf("cluster_peers does not name this host (%q): give every host of the play, this one included", self)
	}
	if fp == "" {
		return self, nil
	}
	hosts := make([]string, 0, len(peers))
	for h, f := range peers {
		if normalizeFingerprint(f) == normalizeFingerprint(fp) {
			hosts = append(hosts, h)
		}
	}
	sort.Strings(hosts)
	return hosts[0], nil
}
