package sshca

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ValidationError is sshd rejecting the candidate configuration.
type ValidationError struct {
	Binary string
	Output string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("the new sshd configuration is rejected by `%s -t`: %s; the old files stay, nothing was changed", e.Binary, e.Output)
}

// Candidate is the configuration after the plan, written to a temporary directory so
// that sshd can check it without the live files changing: the main file with its
// drop-in Include pointed at a copy of the drop-in directory.
type Candidate struct {
	Dir  string
	Main string
	// real path prefix -> candidate path prefix, to translate sshd's messages back
	paths [][2]string
}

// WriteCandidate writes the candidate configuration under a new temporary directory.
func (p *TrustPlan) WriteCandidate(tmpRoot string) (*Candidate, error) {
	dir, err := os.MkdirTemp(tmpRoot, "ssh_ca_trust-")
	if err != nil {
		return nil, fmt.Errorf("cannot create a temporary directory for the candidate configuration: %w", err)
	}
	c := &Candidate{Dir: dir, Main: filepath.Join(dir, "sshd_config")}
	after := map[string]*FileChange{}
	for _, f := range p.Files {
		after[f.Path] = f
	}
	content := func(path string, cur []byte) ([]byte, bool) {
		if f, ok := after[path]; ok {
			return f.After, !f.Remove
		}
		return cur, true
	}
	mainData, _ := content(p.desired.SSHDConfig, p.state.Main.Data)
	lines := parseConfig(mainData)
	if inc, ok := findDropInInclude(lines); ok {
		dropDir := filepath.Join(dir, "sshd_config.d")
		if err := os.Mkdir(dropDir, 0o700); err != nil {
			return c, err
		}
		seen := map[string]bool{}
		files := append([]FileState{}, p.state.DropIns...)
		if _, ok := after[p.DropInPath]; ok && p.DropInPath != "" {
			files = append(files, FileState{Path: p.DropInPath})
		}
		for _, f := range files {
			if seen[f.Path] || filepath.Dir(f.Path) != inc.Dir {
				continue
			}
			seen[f.Path] = true
			data, keep := content(f.Path, f.Data)
			if !keep {
				continue
			}
			if err := os.WriteFile(filepath.Join(dropDir, filepath.Base(f.Path)), data, 0o600); err != nil {
				return c, err
			}
		}
		l := &lines[inc.Line]
		newPattern := filepath.Join(dropDir, filepath.Base(inc.Glob))
		l.Text = strings.Replace(l.Text, inc.Pattern, newPattern, 1)
		c.paths = append(c.paths, [2]string{inc.Dir, dropDir})
		mainData = renderConfig(lines)
	}
	if err := os.WriteFile(c.Main, mainData, 0o600); err != nil {
		return c, err
	}
	c.paths = append(c.paths, [2]string{p.desired.SSHDConfig, c.Main})
	return c, nil
}

// Remove deletes the candidate directory.
func (c *Candidate) Remove() {
	if c != nil && c.Dir != "" {
		os.RemoveAll(c.Dir)
	}
}

// realPaths turns the candidate's paths in sshd's output back into the live ones.
func (c *Candidate) realPaths(s string) string {
	for _, p := range c.paths {
		s = strings.ReplaceAll(s, p[1], p[0])
	}
	return s
}

// Check runs `sshd -t -f` on the candidate, then `sshd -T` to read the values sshd would
// use, and returns them (keyword in lower case -> value).
func (c *Candidate) Check(ctx context.Context, binary string) (map[string]string, error) {
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("sshd binary %s not found, so the new configuration cannot be checked (set sshd_binary); nothing was changed", binary)
	}
	out, err := runSSHD(ctx, binary, "-t", "-f", c.Main)
	if err != nil {
		return nil, &ValidationError{Binary: binary, Output: c.realPaths(out)}
	}
	out, err = runSSHD(ctx, binary, "-T", "-f", c.Main)
	if err != nil {
		return nil, nil // -t accepted it; some sshd versions want -C for -T with Match blocks
	}
	eff := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		kw, val, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok {
			eff[kw] = val
		}
	}
	return eff, nil
}

// CheckLive runs `sshd -t -f` on the live configuration (before a reload).
func CheckLive(ctx context.Context, binary, config string) error {
	if out, err := runSSHD(ctx, binary, "-t", "-f", config); err != nil {
		return &ValidationError{Binary: binary, Output: out}
	}
	return nil
}

func runSSHD(ctx context.Context, binary string, args ...string) (string, error) {
	if _, err := os.Stat(binary); err != nil {
		return "", fmt.Errorf("sshd binary %s not found (set sshd_binary)", binary)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		text = err.Error()
	}
	if err != nil && text == "" {
		text = err.Error()
	}
	return text, err
}
