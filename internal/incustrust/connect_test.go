package incustrust

import (
	"os"
	"strings"
	"testing"
)

func TestUnreachableSocketNamesPath(t *testing.T) {
	_, err := Connection{Socket: "/nonexistent/incus/unix.socket"}.Connect()
	if err == nil || !strings.Contains(err.Error(), "unix socket /nonexistent/incus/unix.socket") {
		t.Fatalf("error = %v", err)
	}
	t.Setenv("INCUS_SOCKET", "/also/missing.socket")
	if w := (Connection{}).Where(); w != "unix socket /also/missing.socket" {
		t.Fatalf("INCUS_SOCKET not used: %s", w)
	}
	os.Unsetenv("INCUS_SOCKET")
	if w := (Connection{}).Where(); w != "unix socket "+DefaultSocket {
		t.Fatalf("default socket: %s", w)
	}
}
