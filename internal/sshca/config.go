package sshca

import (
	"path/filepath"
	"strings"
)

// Directive keywords the module sets (sshd compares keywords case-insensitively).
const (
	kwTrustedUserCAKeys        = "trustedusercakeys"
	kwAuthorizedPrincipalsFile = "authorizedprincipalsfile"
)

// Markers in files the module writes or edits.
const (
	managedHeader   = "# Managed by ssh_ca_trust (incus-access); changes here are overwritten."
	blockBegin      = "# BEGIN ssh_ca_trust: managed by the ssh_ca_trust module, do not edit"
	blockEnd        = "# END ssh_ca_trust"
	disabledPrefix  = "# [disabled by ssh_ca_trust] "
	principalsMark  = "# Managed by ssh_ca_trust"
	dropInName      = "10-ssh-ca-trust.conf"
	sshdDefaultDir  = "/etc/ssh"
	globalScopeNote = "first occurrence wins in sshd"
)

// configLine is one line of an sshd configuration file.
type configLine struct {
	Text    string
	Keyword string   // lower case; "" for blank lines and comments
	Args    []string // unquoted arguments
	InMatch bool     // the line is inside a Match block
}

// parseConfig splits an sshd configuration into lines, with keyword and arguments as
// sshd reads them (keyword and arguments separated by blanks or one '=').
func parseConfig(data []byte) []configLine {
	if len(data) == 0 {
		return nil
	}
	// CRs stay in the line's text (sshd reads them as blanks): rendering gives back the
	// same bytes, so an edit never turns a stray CR and a new line into a CRLF.
	text := strings.TrimSuffix(string(data), "\n") // a file of one blank line is one empty line, kept as it is
	var out []configLine
	inMatch := false
	for _, raw := range strings.Split(text, "\n") {
		l := configLine{Text: raw, InMatch: inMatch}
		s := strings.TrimSpace(raw)
		if s != "" && !strings.HasPrefix(s, "#") {
			kw, rest := splitKeyword(s)
			l.Keyword = strings.ToLower(kw)
			l.Args = splitArgs(rest)
			if l.Keyword == "match" {
				inMatch = true
				l.InMatch = true
			}
		}
		out = append(out, l)
	}
	return out
}

func splitKeyword(s string) (string, string) {
	i := strings.IndexAny(s, " \t=")
	if i < 0 {
		return s, ""
	}
	kw, rest := s[:i], strings.TrimLeft(s[i:], " \t")
	if strings.HasPrefix(rest, "=") {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	return kw, rest
}

// splitArgs splits arguments on blanks, honouring double quotes, until a '#' comment.
func splitArgs(s string) []string {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t'):
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		case !inQuote && r == '#' && !have:
			return args // a comment after the arguments
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}

func renderConfig(lines []configLine) []byte {
	if len(lines) == 0 {
		return nil
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// DropInInclude is the main file's Include of a drop-in directory.
type DropInInclude struct {
	Line    int    // index of the Include line in the main file
	Pattern string // the pattern as written (sshd_config.d/*.conf)
	Glob    string // absolute glob (/etc/ssh/sshd_config.d/*.conf)
	Dir     string // the directory (/etc/ssh/sshd_config.d)
}

// findDropInInclude returns the first global-scope Include of a "<dir>/*.conf" (or
// "<dir>/*") pattern. Relative patterns are relative to /etc/ssh, as sshd reads them.
func findDropInInclude(lines []configLine) (DropInInclude, bool) {
	for i, l := range lines {
		if l.InMatch || l.Keyword != "include" {
			continue
		}
		for _, p := range l.Args {
			base := filepath.Base(p)
			if base != "*.conf" && base != "*" {
				continue
			}
			dir := filepath.Dir(p)
			if strings.ContainsAny(dir, "*?[") {
				continue
			}
			glob := p
			if !filepath.IsAbs(p) {
				glob = filepath.Join(sshdDefaultDir, p)
			}
			return DropInInclude{Line: i, Pattern: p, Glob: glob, Dir: filepath.Dir(glob)}, true
		}
	}
	return DropInInclude{}, false
}

// quoteArg quotes a configuration argument when it holds blanks.
func quoteArg(s string) string {
	if strings.ContainsAny(s, " \t") {
		return `"` + s + `"`
	}
	return s
}
