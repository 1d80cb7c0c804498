package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
	"golang.org/x/crypto/ssh"
)

// authenticate is the public key check: host user, its keys, then the instance user.
func (g *Gateway) authenticate(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	deny := func(format string, a ...any) (*ssh.Permissions, error) {
		err := fmt.Errorf(format, a...)
		log.Printf("%s: login %q denied: %v", meta.RemoteAddr(), meta.User(), err)
		return nil, err
	}
	l, err := ParseLogin(meta.User(), g.DefaultHostUser)
	if err != nil {
		return deny("%v", err)
	}
	hu, err := g.Accounts.Lookup(l.HostUser)
	if err != nil {
		return deny("%v", err)
	}
	if err := g.Accounts.Allowed(hu); err != nil {
		return deny("%v", err)
	}
	if ok, err := g.Accounts.KeyAuthorized(hu, key); !ok {
		return deny("key %s not authorized for host user %q (%v)", ssh.FingerprintSHA256(key), hu.Name, err)
	}
	iu, err := g.instanceUser(l)
	if err != nil {
		return deny("%v", err)
	}
	return &ssh.Permissions{Extensions: map[string]string{
		"instance": l.Instance, "project": l.Project,
		"user": iu.Name, "uid": fmt.Sprint(iu.UID), "gid": fmt.Sprint(iu.GID), "home": iu.Home, "shell": iu.Shell,
	}}, nil
}

// instanceUser runs `getent passwd <user>` in the instance; failures are cached for a minute.
func (g *Gateway) instanceUser(l Login) (InstanceUser, error) {
	cacheKey := l.Project + "/" + l.Instance + "/" + l.InstanceUser
	g.mu.Lock()
	failedAt, failed := g.failed[cacheKey]
	g.mu.Unlock()
	if failed && time.Since(failedAt) < time.Minute {
		return InstanceUser{}, fmt.Errorf("instance user %s failed less than a minute ago (cached)", cacheKey)
	}
	var out, errOut bytes.Buffer
	rc, err := g.exec(l.Project, l.Instance, api.InstanceExecPost{Command: []string{"getent", "passwd", l.InstanceUser}},
		nil, &out, &errOut)
	var iu InstanceUser
	if err == nil && rc != 0 {
		err = fmt.Errorf("getent passwd %s in %s.%s: rc %d %s", l.InstanceUser, l.Instance, l.Project, rc, strings.TrimSpace(errOut.String()))
	}
	if err == nil {
		iu, err = ParseGetent(out.String())
	}
	g.mu.Lock()
	if err != nil {
		g.failed[cacheKey] = time.Now()
	} else {
		delete(g.failed, cacheKey)
	}
	g.mu.Unlock()
	return iu, err
}

// exec runs a command in an instance through the Incus API and returns its exit code.
func (g *Gateway) exec(project, instance string, req api.InstanceExecPost, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	req.WaitForWS = true
	dataDone := make(chan bool)
	args := &incus.InstanceExecArgs{Stdin: stdin, Stdout: stdout, Stderr: stderr, DataDone: dataDone}
	op, err := g.Incus.UseProject(project).ExecInstance(instance, req, args)
	if err != nil {
		return -1, err
	}
	// incusd fails the operation for exit codes 126 and 127 but still reports the code
	waitErr := op.Wait()
	<-dataDone
	if rc, ok := op.Get().Metadata["return"].(float64); ok {
		return int(rc), nil
	}
	if waitErr != nil {
		return -1, waitErr
	}
	return -1, errors.New("exec returned no exit code")
}

func (g *Gateway) serveConn(c net.Conn, config *ssh.ServerConfig) {
	ic := newIdleConn(c, g.IdleTimeout)
	defer ic.Close()
	conn, chans, reqs, err := ssh.NewServerConn(ic, config)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs) // keepalive@openssh.com gets a reply (false), which is all a keepalive needs
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go g.serveSession(conn.Permissions.Extensions, ch, chReqs)
	}
}

// session is one SSH session channel's state until its command starts.
type session struct {
	ext    map[string]string
	ch     ssh.Channel
	env    map[string]string
	pty    bool
	term   string
	width  int
	height int
}

func (g *Gateway) serveSession(ext map[string]string, ch ssh.Channel, reqs <-chan *ssh.Request) {
	s := &session{ext: ext, ch: ch, env: map[string]string{}}
	started := false
	for req := range reqs {
		ok := false
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) == nil && (kv.Name == "LANG" || strings.HasPrefix(kv.Name, "LC_")) {
				s.env[kv.Name] = kv.Value
				ok = true
			}
		case "pty-req":
			var p struct {
				Term          string
				Columns, Rows uint32
				Width, Height uint32
				Modes         string
			}
			if ssh.Unmarshal(req.Payload, &p) == nil {
				s.pty, s.term, s.width, s.height, ok = true, p.Term, int(p.Columns), int(p.Rows), true
			}
		case "exec", "shell", "subsystem":
			if started {
				break
			}
			var arg struct{ Value string }
			if req.Type != "shell" && ssh.Unmarshal(req.Payload, &arg) != nil {
				break
			}
			if req.Type == "subsystem" && arg.Value != "sftp" {
				break
			}
			started, ok = true, true
			go s.run(g, req.Type, arg.Value)
		}
		if req.WantReply {
			req.Reply(ok, nil)
		}
	}
}

// run executes the session's command, sends its exit status and closes the channel.
func (s *session) run(g *Gateway, kind, arg string) {
	rc, err := s.runCommand(g, kind, arg)
	if err != nil {
		log.Printf("%s.%s: %v", s.ext["instance"], s.ext["project"], err)
		fmt.Fprintf(s.ch.Stderr(), "ssh2incus stand-in: %v\n", err)
		rc = 255
	}
	if rc == 126 || rc == 127 {
		rc = 255 // as ssh2incus does
	}
	status := make([]byte, 4)
	binary.BigEndian.PutUint32(status, uint32(rc))
	s.ch.SendRequest("exit-status", false, status)
	s.ch.Close()
}

func (s *session) runCommand(g *Gateway, kind, arg string) (int, error) {
	uid, gid := parseID(s.ext["uid"]), parseID(s.ext["gid"])
	shell, home := s.ext["shell"], s.ext["home"]
	req := api.InstanceExecPost{User: uid, Group: gid, Cwd: home}
	var cmd []string
	switch kind {
	case "shell":
		cmd = []string{shell, "-l"}
	case "exec":
		// ssh2incus mangles newlines and tabs; the stand-in makes each one a space.
		cmd = []string{shell, "-c", strings.NewReplacer("\n", " ", "\t", " ").Replace(arg)}
	case "subsystem":
		if err := g.ensureSFTPServer(s.ext["project"], s.ext["instance"]); err != nil {
			return 0, err
		}
		s.pty = false
		cmd = []string{sftpServerPath}
	}
	env := map[string]string{"TERM": "xterm-256color", "USER": s.ext["user"], "HOME": home, "SHELL": shell}
	if s.term != "" {
		env["TERM"] = s.term
	}
	for k, v := range s.env {
		env[k] = v
	}
	req.Command, req.Environment = cmd, env
	if s.pty {
		req.Interactive, req.Width, req.Height = true, s.width, s.height
		return g.exec(s.ext["project"], s.ext["instance"], req, s.ch, s.ch, nil)
	}
	return g.exec(s.ext["project"], s.ext["instance"], req, s.ch, s.ch, s.ch.Stderr())
}

// ensureSFTPServer copies this binary to sftpServerPath in the instance unless it was seen
// there in the last 20 minutes (so, like ssh2incus, a recreated instance misses it until then).
func (g *Gateway) ensureSFTPServer(project, instance string) error {
	key := project + "/" + instance
	g.mu.Lock()
	at, ok := g.sftpReady[key]
	g.mu.Unlock()
	if ok && time.Since(at) < 20*time.Minute {
		return nil
	}
	c := g.Incus.UseProject(project)
	if rc, _, err := c.GetInstanceFile(instance, sftpServerPath); err == nil {
		rc.Close()
	} else {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		f, err := os.Open(self)
		if err != nil {
			return err
		}
		defer f.Close()
		err = c.CreateInstanceFile(instance, sftpServerPath, incus.InstanceFileArgs{Content: f, Mode: 0o755, Type: "file", WriteMode: "overwrite"})
		if err != nil {
			return fmt.Errorf("copy sftp-server into %s: %w", key, err)
		}
	}
	g.mu.Lock()
	g.sftpReady[key] = time.Now()
	g.mu.Unlock()
	return nil
}

func parseID(s string) uint32 {
	var n uint32
	fmt.Sscan(s, &n)
	return n
}
