package sshca

import (
	"strings"
	"testing"
)

// Found by FuzzSSHDConfigPlan: state absent restored a disabled line that was empty,
// leaving a file of one blank line, which the next run rewrote to an empty file.
func TestAbsentTwiceOnARestoredBlankLineChangesNothing(t *testing.T) {
	lines := parseConfig([]byte("\n"))
	if got := renderConfig(lines); string(got) != "\n" {
		t.Fatalf("a file of one blank line renders as %q", got)
	}
}

// Found by FuzzSSHDConfigPlan: a lone CR before the inserted block became a CRLF, which
// the reader then dropped, so every run rewrote the file.
func TestCRStaysInTheLineAndTheEditIsStable(t *testing.T) {
	for _, in := range []string{"\r", "Port 22\r\nPermitRootLogin no\r\n"} {
		if got := string(renderConfig(parseConfig([]byte(in)))); strings.TrimSuffix(got, "\n") != strings.TrimSuffix(in, "\n") {
			t.Fatalf("%q renders as %q", in, got)
		}
	}
	if l := parseConfig([]byte("Port 22\r\n")); l[0].Keyword != "port" || len(l[0].Args) != 1 || l[0].Args[0] != "22" {
		t.Fatalf("CRLF line read as %+v", l[0])
	}
}

func TestParseConfigKeywordsArgsAndScope(t *testing.T) {
	lines := parseConfig([]byte("Include=sshd_config.d/*.conf\nTrustedUserCAKeys \"/etc/ssh/a b.pem\" # c\nMatch User x\n  Include /y/*.conf\n"))
	if lines[0].Keyword != "include" || lines[1].Args[0] != "/etc/ssh/a b.pem" || len(lines[1].Args) != 1 || !lines[3].InMatch {
		t.Fatalf("%+v", lines)
	}
	inc, ok := findDropInInclude(lines)
	if !ok || inc.Dir != "/etc/ssh/sshd_config.d" || inc.Glob != "/etc/ssh/sshd_config.d/*.conf" {
		t.Fatalf("include %+v", inc)
	}
}
