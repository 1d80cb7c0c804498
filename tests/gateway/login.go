package main

import (
	"errors"
	"fmt"
	"strings"
)

// Login is a parsed gateway login: [instance-user@]instance[.project][~host-user | +host-user].
type Login struct {
	InstanceUser string
	Instance     string
	Project      string
	HostUser     string
}

func (l Login) String() string {
	return fmt.Sprintf("%s@%s.%s~%s", l.InstanceUser, l.Instance, l.Project, l.HostUser)
}

// ParseLogin parses the SSH user name the way ssh2incus 0.10 does (the client's OpenSSH has
// already split user@host at the last '@'): the first '~' (else the first '+') splits off the
// host user, then the first '@' the instance user, then the first '.' the project. "%40"
// decodes to '@'. Logins that start with '+', '~', '%' or '/' select modes the real gateway
// has (create instance, persistent session, commands) and the stand-in rejects them.
func ParseLogin(raw, defaultHostUser string) (Login, error) {
	if raw == "" {
		return Login{}, errors.New("empty login")
	}
	if strings.ContainsAny(raw[:1], "+~%/") {
		return Login{}, fmt.Errorf("login %q starts with %q: special modes are not supported", raw, raw[:1])
	}
	s := strings.ReplaceAll(raw, "%40", "@")
	l := Login{InstanceUser: "root", Project: "default", HostUser: defaultHostUser}
	if i := strings.IndexByte(s, '~'); i >= 0 {
		s, l.HostUser = s[:i], s[i+1:]
	} else if i := strings.IndexByte(s, '+'); i >= 0 {
		s, l.HostUser = s[:i], s[i+1:]
	}
	if user, rest, ok := strings.Cut(s, "@"); ok {
		l.InstanceUser, s = user, rest
	}
	if instance, project, ok := strings.Cut(s, "."); ok {
		s = instance
		if project != "" {
			l.Project = project
		}
	}
	l.Instance = s
	switch {
	case l.Instance == "":
		return Login{}, fmt.Errorf("login %q: empty instance name", raw)
	case l.InstanceUser == "":
		return Login{}, fmt.Errorf("login %q: empty instance user", raw)
	case l.HostUser == "":
		return Login{}, fmt.Errorf("login %q: empty host user", raw)
	}
	return l, nil
}
