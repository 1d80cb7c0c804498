package sshca

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FileState is one file as read from disk.
type FileState struct {
	Path   string
	Data   []byte
	Exists bool
	UID    int
	GID    int
	Mode   os.FileMode
	Label  string
}

// State is everything on disk the plan depends on.
type State struct {
	Main FileState
	// DropIns are the files the main file's drop-in Include matches, sorted by name
	// (empty when it has none).
	DropIns    []FileState
	KeysFile   FileState
	Principals []FileState // regular files in principals_dir
}

// Desired is what the module was asked for, with the keys already parsed.
type Desired struct {
	Absent        bool
	Keys          []CAKey
	Exclusive     bool
	KeysFile      string
	SSHDConfig    string
	Principals    map[string][]string
	PrincipalsDir string
}

// FileChange is one file the plan writes or removes.
type FileChange struct {
	Path    string
	Kind    string // keys_file | principals | drop_in | sshd_config
	Before  []byte
	After   []byte
	Existed bool
	Remove  bool
	UID     int
	GID     int
	Mode    os.FileMode
	Label   string
	Reasons []string
}

// TrustPlan is the whole decision: file contents after the run and why, as data.
type TrustPlan struct {
	// ConfigMode is "drop-in" (the directives are in DropInPath) or "main" (in a managed
	// block of the main file); "" with state absent.
	ConfigMode string
	DropInPath string
	Include    DropInInclude
	Files      []*FileChange
	// Keys are the keys in the keys file afterwards (empty with state absent).
	Keys     []CAKey
	Changes  []string
	Warnings []string

	desired Desired
	state   State
}

// Changed reports whether any file is written or removed.
func (p *TrustPlan) Changed() bool { return len(p.Files) > 0 }

const publicFileMode = 0o644

// NewTrustPlan computes the file contents that make sshd trust the desired keys (or
// stop trusting them, with Absent), from the current state. It reads nothing.
func NewTrustPlan(d Desired, st State) (*TrustPlan, error) {
	p := &TrustPlan{desired: d, state: st}
	if !st.Main.Exists {
		return nil, fmt.Errorf("sshd_config %s does not exist (is openssh-server installed?)", d.SSHDConfig)
	}
	mainLines := parseConfig(st.Main.Data)
	inc, hasDropIn := findDropInInclude(mainLines)
	if hasDropIn {
		p.Include = inc
		p.DropInPath = filepath.Join(inc.Dir, dropInName)
	}
	if d.Absent {
		p.planAbsent(mainLines)
	} else {
		if err := p.planKeys(); err != nil {
			return nil, err
		}
		p.planPrincipals()
		p.planConfig(mainLines, hasDropIn)
	}
	return p, nil
}

func (p *TrustPlan) directives() []string {
	d := []string{"TrustedUserCAKeys " + quoteArg(p.desired.KeysFile)}
	if len(p.desired.Principals) > 0 {
		d = append(d, "AuthorizedPrincipalsFile "+quoteArg(filepath.Join(p.desired.PrincipalsDir, "%u")))
	}
	return d
}

// wanted maps each managed keyword to the value this plan sets.
func (p *TrustPlan) wanted() map[string]string {
	w := map[string]string{kwTrustedUserCAKeys: p.desired.KeysFile}
	if len(p.desired.Principals) > 0 {
		w[kwAuthorizedPrincipalsFile] = filepath.Join(p.desired.PrincipalsDir, "%u")
	}
	return w
}

// ---------------------------------------------------------------- keys file

func (p *TrustPlan) planKeys() error {
	d, cur := p.desired, p.state.KeysFile
	var lines []string
	have := map[string]bool{}
	if !d.Exclusive && cur.Exists {
		for i, raw := range strings.Split(string(cur.Data), "\n") {
			line := strings.TrimSpace(raw)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, err := parseKeyLine(line)
			if err != nil {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s line %d %s; it is kept as it is (exclusive=false)", d.KeysFile, i+1, err))
				lines = append(lines, line)
				continue
			}
			if !have[k.Fingerprint] {
				have[k.Fingerprint] = true
				lines = append(lines, line)
			}
		}
	}
	for _, k := range d.Keys {
		if !have[k.Fingerprint] {
			have[k.Fingerprint] = true
			lines = append(lines, k.Line)
		}
	}
	if len(lines) == 0 {
		return fmt.Errorf("no CA key to trust: give ca_keys or vault (state=absent removes the trust)")
	}
	after := []byte(managedHeader + "\n" + strings.Join(lines, "\n") + "\n")
	p.Keys = keysIn(after)

	before := keysIn(cur.Data)
	var reasons []string
	beforeFP := map[string]bool{}
	for _, k := range before {
		beforeFP[k.Fingerprint] = true
	}
	afterFP := map[string]bool{}
	for _, k := range p.Keys {
		afterFP[k.Fingerprint] = true
		if !beforeFP[k.Fingerprint] {
			reasons = append(reasons, fmt.Sprintf("trust %s %s%s", k.Type, k.Fingerprint, sourcesOf(k.Fingerprint, d.Keys)))
		}
	}
	for _, k := range before {
		if !afterFP[k.Fingerprint] {
			reasons = append(reasons, fmt.Sprintf("stop trusting %s %s (exclusive)", k.Type, k.Fingerprint))
		}
	}
	p.addFile("keys_file", cur, after, 0, 0, publicFileMode, reasons)
	return nil
}

func keysIn(data []byte) []CAKey {
	var out []CAKey
	for _, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, err := parseKeyLine(line); err == nil {
			out = append(out, k)
		}
	}
	return out
}

func sourcesOf(fp string, keys []CAKey) string {
	for _, k := range keys {
		if k.Fingerprint == fp {
			return " (from " + strings.Join(k.Sources, ", ") + ")"
		}
	}
	return ""
}

// ---------------------------------------------------------------- principals

func principalsContent(user string, principals []string) []byte {
	return []byte(fmt.Sprintf("%s: principals that may log in as %s\n%s\n", principalsMark, user, strings.Join(principals, "\n")))
}

func (p *TrustPlan) planPrincipals() {
	d := p.desired
	existing := map[string]FileState{}
	for _, f := range p.state.Principals {
		existing[filepath.Base(f.Path)] = f
	}
	for _, user := range sortedUsers(d.Principals) {
		path := filepath.Join(d.PrincipalsDir, user)
		cur, ok := existing[user]
		if !ok {
			cur = FileState{Path: path}
		}
		var reasons []string
		if cur.Exists && !bytes.HasPrefix(cur.Data, []byte(principalsMark)) {
			reasons = append(reasons, "replace a file the module did not write")
		}
		reasons = append(reasons, fmt.Sprintf("%s may log in with a certificate for %s", user, strings.Join(d.Principals[user], ", ")))
		p.addFile("principals", cur, principalsContent(user, d.Principals[user]), 0, 0, publicFileMode, reasons)
	}
	for _, f := range p.state.Principals {
		user := filepath.Base(f.Path)
		if _, want := d.Principals[user]; !want && bytes.HasPrefix(f.Data, []byte(principalsMark)) {
			p.removeFile("principals", f, fmt.Sprintf("%s is no longer in principals", user))
		}
	}
}

func sortedUsers(m map[string][]string) []string {
	users := make([]string, 0, len(m))
	for u := range m {
		users = append(users, u)
	}
	sort.Strings(users)
	return users
}

// ---------------------------------------------------------------- sshd configuration

func (p *TrustPlan) planConfig(mainLines []configLine, hasDropIn bool) {
	want := p.wanted()
	mainPath := p.desired.SSHDConfig
	// A managed block from an earlier run without the drop-in Include goes away first.
	mainLines, hadBlock := removeBlock(mainLines)
	var mainReasons []string
	if hadBlock && hasDropIn {
		mainReasons = append(mainReasons, "remove the ssh_ca_trust block (the directives are in "+p.DropInPath+" now)")
	}

	if hasDropIn {
		p.ConfigMode = "drop-in"
		// Lines before the Include win over the drop-in: disable the conflicting ones.
		inc, _ := findDropInInclude(mainLines)
		mainReasons = append(mainReasons, disableConflicts(mainLines[:inc.Line], want, mainPath, "before its Include of "+p.Include.Pattern)...)
		// Drop-ins read before ours win too.
		var ours FileState
		for _, f := range p.state.DropIns {
			name := filepath.Base(f.Path)
			if f.Path == p.DropInPath {
				ours = f
				continue
			}
			if name < dropInName {
				lines := parseConfig(f.Data)
				if r := disableConflicts(lines, want, f.Path, "read before "+dropInName); len(r) > 0 {
					p.addFile("drop_in", f, renderConfig(lines), f.UID, f.GID, f.Mode, r)
				}
			}
		}
		if ours.Path == "" {
			ours = FileState{Path: p.DropInPath}
		}
		content := managedHeader + "\n# sshd trusts SSH user certificates signed by the CA keys in the keys file.\n" + strings.Join(p.directives(), "\n") + "\n"
		p.addFile("drop_in", ours, []byte(content), 0, 0, publicFileMode, []string{"set " + strings.Join(p.directives(), "; ")})
	} else {
		p.ConfigMode = "main"
		mainReasons = append(mainReasons, disableConflicts(mainLines, want, mainPath, "outside the ssh_ca_trust block")...)
		at := len(mainLines)
		for i, l := range mainLines {
			if l.Keyword != "" {
				at = i
				break
			}
		}
		block := []configLine{{Text: blockBegin}}
		for _, d := range p.directives() {
			block = append(block, configLine{Text: d})
		}
		block = append(block, configLine{Text: blockEnd})
		mainLines = append(mainLines[:at:at], append(block, mainLines[at:]...)...)
		if !bytes.Equal(renderConfig(mainLines), p.state.Main.Data) {
			mainReasons = append(mainReasons, "set "+strings.Join(p.directives(), "; ")+" in a managed block before the first directive (no drop-in directory is included)")
		}
	}
	m := p.state.Main
	p.addFile("sshd_config", m, renderConfig(mainLines), m.UID, m.GID, m.Mode, mainReasons)
}

// disableConflicts comments out global-scope lines that set a managed keyword to another
// value and returns one reason per line. lines is changed in place.
func disableConflicts(lines []configLine, want map[string]string, path, where string) []string {
	var reasons []string
	for i := range lines {
		l := &lines[i]
		v, managed := want[l.Keyword]
		if !managed || l.InMatch || strings.Join(l.Args, " ") == v {
			continue
		}
		reasons = append(reasons, fmt.Sprintf("%s line %d: comment out %q (%s, %s)", path, i+1, strings.TrimSpace(l.Text), where, globalScopeNote))
		l.Text = disabledPrefix + l.Text
		l.Keyword = ""
	}
	return reasons
}

// removeBlock drops the managed block; it reports whether there was one.
func removeBlock(lines []configLine) ([]configLine, bool) {
	start := -1
	for i, l := range lines {
		t := strings.TrimSpace(l.Text)
		if t == blockBegin {
			start = i
		}
		if t == blockEnd && start >= 0 {
			out := append(append([]configLine{}, lines[:start]...), lines[i+1:]...)
			return out, true
		}
	}
	return lines, false
}

// restoreDisabled turns lines the module commented out back into directives.
func restoreDisabled(data []byte) ([]byte, int) {
	lines := parseConfig(data)
	n := 0
	for i := range lines {
		if strings.HasPrefix(lines[i].Text, disabledPrefix) {
			lines[i].Text = strings.TrimPrefix(lines[i].Text, disabledPrefix)
			n++
		}
	}
	return renderConfig(lines), n
}

// ---------------------------------------------------------------- state absent

func (p *TrustPlan) planAbsent(mainLines []configLine) {
	mainLines, hadBlock := removeBlock(mainLines)
	after, restored := restoreDisabled(renderConfig(mainLines))
	var reasons []string
	if hadBlock {
		reasons = append(reasons, "remove the ssh_ca_trust block")
	}
	if restored > 0 {
		reasons = append(reasons, fmt.Sprintf("restore %d line(s) the module had commented out", restored))
	}
	m := p.state.Main
	p.addFile("sshd_config", m, after, m.UID, m.GID, m.Mode, reasons)
	for _, f := range p.state.DropIns {
		if f.Path == p.DropInPath {
			p.removeFile("drop_in", f, "state=absent")
			continue
		}
		if a, n := restoreDisabled(f.Data); n > 0 {
			p.addFile("drop_in", f, a, f.UID, f.GID, f.Mode, []string{fmt.Sprintf("restore %d line(s) the module had commented out", n)})
		}
	}
	if p.state.KeysFile.Exists {
		p.removeFile("keys_file", p.state.KeysFile, "state=absent")
	}
	for _, f := range p.state.Principals {
		if bytes.HasPrefix(f.Data, []byte(principalsMark)) {
			p.removeFile("principals", f, "state=absent")
		}
	}
}

// ---------------------------------------------------------------- changes

// addFile records a write when the content or the attributes differ.
func (p *TrustPlan) addFile(kind string, cur FileState, after []byte, uid, gid int, mode os.FileMode, reasons []string) {
	if cur.Exists && bytes.Equal(cur.Data, after) {
		var attr []string
		if cur.Mode.Perm() != mode.Perm() {
			attr = append(attr, fmt.Sprintf("mode %04o -> %04o", cur.Mode.Perm(), mode.Perm()))
		}
		if cur.UID != uid || cur.GID != gid {
			attr = append(attr, fmt.Sprintf("owner %d:%d -> %d:%d", cur.UID, cur.GID, uid, gid))
		}
		if len(attr) == 0 {
			return
		}
		reasons = attr
	} else if !cur.Exists {
		reasons = append([]string{"create"}, reasons...)
	} else if len(reasons) == 0 {
		reasons = []string{"rewrite (comments or formatting differ)"}
	}
	fc := &FileChange{Path: cur.Path, Kind: kind, Before: cur.Data, After: after, Existed: cur.Exists,
		UID: uid, GID: gid, Mode: mode, Label: cur.Label, Reasons: reasons}
	p.Files = append(p.Files, fc)
	for _, r := range reasons {
		p.Changes = append(p.Changes, cur.Path+": "+r)
	}
}

func (p *TrustPlan) removeFile(kind string, cur FileState, why string) {
	p.Files = append(p.Files, &FileChange{Path: cur.Path, Kind: kind, Before: cur.Data, Existed: true, Remove: true, Reasons: []string{"remove (" + why + ")"}})
	p.Changes = append(p.Changes, cur.Path+": remove ("+why+")")
}

// Fingerprints of the keys trusted afterwards.
func (p *TrustPlan) Fingerprints() []string {
	out := []string{}
	for _, k := range p.Keys {
		out = append(out, k.Fingerprint)
	}
	return out
}

// KeyLines are the trusted keys as public key lines (usable as ca_keys elsewhere).
func (p *TrustPlan) KeyLines() []string {
	out := []string{}
	for _, k := range p.Keys {
		out = append(out, k.Line)
	}
	return out
}
