// Package pemkeys finds private key material in text that must hold only public keys or
// certificates: every module and the workstation helper refuse (and mask) the same things.
// plugins/plugin_utils/controller_files.py is the controller's copy of this rule.
package pemkeys

import (
	"sort"
	"strings"
)

const (
	beginMarker = "-----BEGIN "
	puttyHeader = "PuTTY-User-Key-File"
)

// Block is one private key found in a text.
type Block struct {
	Type string // the PEM type ("RSA PRIVATE KEY", "OPENSSH PRIVATE KEY"...) or "PuTTY-User-Key-File"
	Line int    // 1-based line where it starts
	// Text is the block from its BEGIN line to its END line (to the end of the text when
	// the END line is missing): what a caller registers as a secret. Never print it.
	Text   string
	offset int
}

// IsKeyType reports whether a PEM block type names a private key (PKCS#1, SEC 1, PKCS#8,
// encrypted, OpenSSH).
func IsKeyType(pemType string) bool { return strings.Contains(pemType, "PRIVATE KEY") }

// Contains reports whether text holds any private key block.
func Contains(text string) bool { return len(Find(text)) > 0 }

// Find returns every private key block of text in order: PEM-armoured blocks whose type
// names a private key (damaged ones included: a BEGIN line is enough) and PuTTY key files.
func Find(text string) []Block {
	var found []Block
	pos := 0
	for {
		i := strings.Index(text[pos:], beginMarker)
		if i < 0 {
			break
		}
		start := pos + i
		// The type ends at the next "-----" on the same line: searching no further keeps a
		// text of many BEGIN lines linear (the fuzzer found whole-text searches quadratic).
		line := text[start+len(beginMarker):]
		if nl := strings.IndexByte(line, '\n'); nl >= 0 {
			line = line[:nl]
		}
		typ := line
		if j := strings.Index(line, "-----"); j >= 0 {
			typ = line[:j]
		}
		if IsKeyType(typ) {
			block := text[start:]
			endMarker := "-----END " + typ + "-----"
			if k := strings.Index(block, endMarker); k >= 0 {
				block = block[:k+len(endMarker)]
			}
			found = append(found, Block{Type: typ, Text: block, offset: start})
		}
		pos = start + len(beginMarker)
	}
	if i := strings.Index(text, puttyHeader); i >= 0 {
		start := strings.LastIndexByte(text[:i], '\n') + 1
		found = append(found, Block{Type: puttyHeader, Text: text[start:], offset: start})
	}
	sort.SliceStable(found, func(a, b int) bool { return found[a].offset < found[b].offset })
	line, at := 1, 0
	for i := range found {
		line += strings.Count(text[at:found[i].offset], "\n")
		at = found[i].offset
		found[i].Line = line
	}
	return found
}
