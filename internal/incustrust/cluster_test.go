package incustrust

import "testing"

func TestReconcilingHost(t *testing.T) {
	peers := map[string]string{"c2": "AA:BB", "c1": "aabb", "solo": "ccdd", "unknown": "", "c3": "aabb"}
	for self, want := range map[string]string{"c1": "c1", "c2": "c1", "c3": "c1", "solo": "solo", "unknown": "unknown"} {
		got, err := ReconcilingHost(self, peers)
		if err != nil || got != want {
			t.Errorf("ReconcilingHost(%q) = %q, %v; want %q", self, got, err, want)
		}
	}
	if _, err := ReconcilingHost("absent", peers); err == nil {
		t.Error("a host missing from cluster_peers was accepted")
	}
	// --limit to one member: it is the only peer, so it reconciles.
	if got, _ := ReconcilingHost("c2", map[string]string{"c2": "aabb"}); got != "c2" {
		t.Errorf("limited to c2: %q", got)
	}
}
