package sshca

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Reloader makes a running sshd read its configuration again.
type Reloader struct {
	PIDFile string
	// SystemdDir is where a running systemd leaves its mark (/run/systemd/system).
	SystemdDir string
}

// Reload reloads sshd and returns how. Order: the sshd in pid_file (through systemd
// when that sshd is the main process of ssh.service/sshd.service, else SIGHUP, which is
// what the init scripts do), then an active systemd unit, then `service ssh|sshd reload`.
// ErrNoReload means no way was found; the caller warns.
func (r Reloader) Reload(ctx context.Context) (string, error) {
	pid, pidErr := r.livePID()
	systemd := r.systemdRuns()
	if pid > 0 {
		if systemd {
			for _, unit := range []string{"ssh.service", "sshd.service"} {
				if mainPID(ctx, unit) == pid {
					return "systemctl reload " + unit, run(ctx, "systemctl", "reload", unit)
				}
			}
		}
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			return "", fmt.Errorf("cannot send SIGHUP to sshd (pid %d from %s): %w", pid, r.PIDFile, err)
		}
		// sshd re-executes itself in place on SIGHUP; it exits if it cannot start again.
		time.Sleep(300 * time.Millisecond)
		if syscall.Kill(pid, 0) != nil {
			return "", fmt.Errorf("sshd (pid %d) exited after SIGHUP; check its log", pid)
		}
		return fmt.Sprintf("SIGHUP to sshd pid %d (%s)", pid, r.PIDFile), nil
	}
	if systemd {
		for _, unit := range []string{"ssh.service", "sshd.service"} {
			if exec.CommandContext(ctx, "systemctl", "is-active", "--quiet", unit).Run() == nil {
				return "systemctl reload " + unit, run(ctx, "systemctl", "reload", unit)
			}
		}
	}
	if _, err := exec.LookPath("service"); err == nil {
		for _, name := range []string{"ssh", "sshd"} {
			// Debian's init script reports success on reload when sshd is not running.
			if _, err := os.Stat("/etc/init.d/" + name); err == nil && exec.CommandContext(ctx, "service", name, "status").Run() == nil {
				return "service " + name + " reload", run(ctx, "service", name, "reload")
			}
		}
	}
	why := "no sshd process found"
	if pidErr != nil {
		why = pidErr.Error()
	}
	return "", fmt.Errorf("%w: %s, systemd %s, no running service ssh/sshd", ErrNoReload, why, map[bool]string{true: "has no active ssh/sshd unit", false: "does not run"}[systemd])
}

// ErrNoReload is returned when no reload method applies.
var ErrNoReload = errors.New("sshd could not be reloaded")

func (r Reloader) systemdRuns() bool {
	dir := r.SystemdDir
	if dir == "" {
		dir = "/run/systemd/system"
	}
	_, err := os.Stat(dir)
	return err == nil
}

// livePID returns the pid in the pid file when that process is alive and is sshd.
func (r Reloader) livePID() (int, error) {
	if r.PIDFile == "" {
		return 0, errors.New("no pid_file")
	}
	data, err := os.ReadFile(r.PIDFile)
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", r.PIDFile, errors.Unwrap(err))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pid file %s does not hold a pid", r.PIDFile)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return 0, fmt.Errorf("pid %d from %s is not running", pid, r.PIDFile)
	}
	if c := strings.TrimSpace(string(comm)); !strings.HasPrefix(c, "sshd") {
		return 0, fmt.Errorf("pid %d from %s is %q, not sshd", pid, r.PIDFile, c)
	}
	return pid, nil
}

func mainPID(ctx context.Context, unit string) int {
	out, err := exec.CommandContext(ctx, "systemctl", "show", "-p", "MainPID", "--value", unit).Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
