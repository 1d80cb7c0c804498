package clientcerts

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Env is everything the program takes from its surroundings, so tests can run Main
// directly.
type Env struct {
	Getenv      func(string) string
	Stdin       io.Reader
	Stdout      io.Writer
	Stderr      io.Writer
	Interactive bool // stdin is a terminal: add-remote may ask about the server certificate
	Now         func() time.Time
}

// OSEnv is the real process environment.
func OSEnv(interactive bool) Env {
	return Env{Getenv: os.Getenv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Interactive: interactive, Now: time.Now}
}

// Program is the command's name in messages.
const Program = "incus-client-certs"

// Help is the `help` text.
const Help = `incus-client-certs: the workstation side of Incus client certificates.

Usage:
  incus-client-certs generate <client-name> [--days N] [--force]
      New ECDSA P-384 client certificate and key (as the incus CLI makes them, with the
      client name as the subject) at $INCUS_CONF/client.{crt,key} (default
      ~/.config/incus; key 0600, directory 0700). Valid --days (default 3650 = 10 years).
      Refuses to replace an existing pair; --force moves it aside with a timestamp first.
  incus-client-certs backup
      Copies client.crt and client.key into ~/incus-cert-backup-<date>/ (0700/0600) for
      your password manager.
  incus-client-certs extract
      Prints the public certificate only (never a key), for the inventory:
        incus-client-certs extract > inventory/incus/trusted-client-certs/<name>.crt
  incus-client-certs info
      Subject, SHA-256 fingerprint (as 'incus config trust list' shows it), key type,
      validity and days left; warns when fewer than 30 days are left.
  incus-client-certs add-remote <name> <address> [port] [--accept-certificate |
                     --fingerprint <sha256>] [--project P] [--timeout 10s]
      Adds the Incus server at https://<address>:<port> (default 8443) as remote <name>
      in $INCUS_CONF/config.yml and servercerts/, as 'incus remote add' does. Shows the
      server's certificate fingerprint and asks to accept it, unless
      --accept-certificate or --fingerprint (pinned: a different certificate is refused)
      is given. Reports whether the server trusts your certificate and which projects
      it can see. Then: incus list <name>:
  incus-client-certs list-remotes
      The remotes of $INCUS_CONF/config.yml, as the incus CLI sees them.
  incus-client-certs add-to-inventory <inventory.yaml> [--name N] [--description D]
                     [--restricted] [--project P ...]
      Adds this client to all.vars.incus_trusted_clients of a seed-shaped inventory
      (comments, order and blank lines kept) and writes its public certificate to
      incus/trusted-client-certs/<name>.crt beside the inventory. --name defaults to
      the certificate's common name; --project may be repeated.
  incus-client-certs help

The seed's Quick Start:
  incus-client-certs generate my-workstation
  incus-client-certs backup     # import into the password manager, delete the folder
  incus-client-certs extract > inventory/incus/trusted-client-certs/my-workstation.crt
  incus-client-certs add-to-inventory inventory/host-incus-cluster.yaml   # or edit it
  ansible-playbook -i inventory/host-incus-cluster.yaml playbooks/host-incus-update.yaml
  incus-client-certs add-remote incus-aoostar 10.10.0.20 8443
  incus list incus-aoostar:

Environment: INCUS_CONF (default ~/.config/incus), HOME.
Errors: one line on stderr, exit status 1 (2 for a usage error); nothing is written.
`

// usageError is a wrong command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Main runs one command line and returns the exit status.
func Main(args []string, env Env) int {
	if env.Now == nil {
		env.Now = time.Now
	}
	verb := ""
	if len(args) > 0 {
		verb = args[0]
	}
	err := run(verb, args, env)
	if err == nil {
		return 0
	}
	msg := strings.Join(strings.Fields(err.Error()), " ") // one line, whatever a library said
	prefix := Program + ": "
	if verb != "" && !errors.As(err, new(usageError)) {
		prefix += verb + ": "
	}
	fmt.Fprintln(env.Stderr, prefix+msg)
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

func run(verb string, args []string, env Env) error {
	switch verb {
	case "":
		return usageError{"no command given: try `incus-client-certs help`"}
	case "help", "-h", "--help":
		if len(args) > 1 {
			return usageError{"help takes no arguments"}
		}
		_, err := io.WriteString(env.Stdout, Help)
		return err
	case "generate":
		return cmdGenerate(args[1:], env)
	case "backup":
		return cmdBackup(args[1:], env)
	case "extract":
		return cmdExtract(args[1:], env)
	case "info":
		return cmdInfo(args[1:], env)
	case "add-remote":
		return cmdAddRemote(args[1:], env)
	case "list-remotes":
		return cmdListRemotes(args[1:], env)
	case "add-to-inventory":
		return cmdAddToInventory(args[1:], env)
	}
	return usageError{fmt.Sprintf("unknown command %q: try `incus-client-certs help`", verb)}
}

// parse reads flags anywhere on the line (the seed writes them after the arguments)
// and checks the number of positional arguments.
func parse(fs *flag.FlagSet, args []string, min, max int, usage string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{fmt.Sprintf("%s: %v (usage: %s)", fs.Name(), err, usage)}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	switch {
	case len(pos) < min:
		return nil, usageError{fmt.Sprintf("%s: missing argument (usage: %s)", fs.Name(), usage)}
	case len(pos) > max:
		return nil, usageError{fmt.Sprintf("%s: unexpected argument %q (usage: %s)", fs.Name(), pos[max], usage)}
	}
	return pos, nil
}

func confDir(env Env) (string, error) { return ConfDir(env.Getenv) }

func cmdGenerate(args []string, env Env) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	days := fs.Int("days", DefaultValidityDays, "validity in days")
	force := fs.Bool("force", false, "move an existing pair aside")
	pos, err := parse(fs, args, 1, 1, "generate <client-name> [--days N] [--force]")
	if err != nil {
		return err
	}
	dir, err := confDir(env)
	if err != nil {
		return err
	}
	res, err := Generate(dir, pos[0], *days, *force, env.Now())
	if err != nil {
		return err
	}
	w := env.Stdout
	for _, p := range res.MovedAside {
		fmt.Fprintf(w, "Moved the old pair aside: %s\n", p)
	}
	fmt.Fprintf(w, "Client certificate for %s (ECDSA P-384, valid until %s):\n", pos[0], res.NotAfter.UTC().Format("2006-01-02"))
	fmt.Fprintf(w, "  certificate: %s\n  private key: %s (keep it secret, never commit it)\n", res.CertPath, res.KeyPath)
	fmt.Fprintf(w, "  fingerprint: %s\n", res.Fingerprint)
	fmt.Fprintf(w, "Next:\n  incus-client-certs backup\n  incus-client-certs extract > inventory/incus/trusted-client-certs/%s.crt\n", pos[0])
	return nil
}

func cmdBackup(args []string, env Env) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	if _, err := parse(fs, args, 0, 0, "backup"); err != nil {
		return err
	}
	dir, err := confDir(env)
	if err != nil {
		return err
	}
	target, err := Backup(dir, env.Getenv("HOME"), env.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, `Backed up client.crt and client.key to %s/ (directory 0700, files 0600).
Then:
  1. Open your password manager (KeePass, 1Password, ...).
  2. Create an entry "Incus Client Certificates".
  3. Attach both client.key and client.crt from %s/.
  4. Add notes: server addresses, date generated, purpose.
  5. Delete the backup directory: rm -rf %s
Never commit client.key to Git.
`, target, target, target)
	return nil
}

func cmdExtract(args []string, env Env) error {
	fs := flag.NewFlagSet("extract", flag.ContinueOnError)
	if _, err := parse(fs, args, 0, 0, "extract"); err != nil {
		return err
	}
	dir, err := confDir(env)
	if err != nil {
		return err
	}
	cert, err := Extract(dir, env.Stdout)
	if err != nil {
		return err
	}
	if cert.HadPrivateKey {
		fmt.Fprintf(env.Stderr, "%s: extract: warning: %s/client.crt also holds a private key; only the certificate was printed\n", Program, dir)
	}
	return nil
}

func cmdInfo(args []string, env Env) error {
	fs := flag.NewFlagSet("info", flag.ContinueOnError)
	if _, err := parse(fs, args, 0, 0, "info"); err != nil {
		return err
	}
	dir, err := confDir(env)
	if err != nil {
		return err
	}
	info, err := Info(dir, env.Now())
	if err != nil {
		return err
	}
	w := env.Stdout
	fmt.Fprintf(w, "Certificate:  %s\n", info.Path)
	fmt.Fprintf(w, "Subject:      %s\n", info.Subject)
	fmt.Fprintf(w, "Fingerprint:  %s\n", info.Fingerprint)
	fmt.Fprintf(w, "              %s in `incus config trust list`\n", ShortFingerprint(info.Fingerprint))
	fmt.Fprintf(w, "              SHA256 Fingerprint=%s (openssl x509 -fingerprint -sha256)\n", OpenSSLFingerprint(info.Fingerprint))
	fmt.Fprintf(w, "Key type:     %s\n", info.KeyType)
	usage := "yes"
	if !info.ClientAuth {
		usage = "NO (no clientAuth extended key usage: Incus will refuse it)"
	}
	fmt.Fprintf(w, "Client auth:  %s\n", usage)
	fmt.Fprintf(w, "Not before:   %s\n", info.NotBefore.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Not after:    %s\n", info.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Days left:    %d\n", info.DaysLeft)
	fmt.Fprintf(w, "Private key:  %s\n", info.KeyStatus)
	switch {
	case !info.NotAfter.After(env.Now()):
		fmt.Fprintf(env.Stderr, "%s: info: warning: the certificate EXPIRED on %s: generate a new one (--force) and rotate it in the inventory\n", Program, info.NotAfter.UTC().Format("2006-01-02"))
	case info.DaysLeft < ExpiryWarningDays:
		fmt.Fprintf(env.Stderr, "%s: info: warning: the certificate expires in %d days (%s): generate a new one (--force) and rotate it in the inventory\n", Program, info.DaysLeft, info.NotAfter.UTC().Format("2006-01-02"))
	}
	return nil
}

func cmdAddRemote(args []string, env Env) error {
	fs := flag.NewFlagSet("add-remote", flag.ContinueOnError)
	accept := fs.Bool("accept-certificate", false, "accept the server certificate")
	pin := fs.String("fingerprint", "", "the server certificate's SHA-256")
	project := fs.String("project", "", "the remote's default project")
	timeout := fs.Duration("timeout", 10*time.Second, "connection timeout")
	usage := "add-remote <name> <address> [port] [--accept-certificate | --fingerprint <sha256>] [--project P]"
	pos, err := parse(fs, args, 2, 3, usage)
	if err != nil {
		return err
	}
	if *accept && *pin != "" {
		return usageError{"add-remote: give --accept-certificate or --fingerprint, not both"}
	}
	port := DefaultPort
	if len(pos) == 3 {
		if port, err = ParsePort(pos[2]); err != nil {
			return err
		}
	}
	dir, err := confDir(env)
	if err != nil {
		return err
	}
	req := AddRemoteRequest{ConfDir: dir, Name: pos[0], Host: pos[1], Port: port, Project: *project, Timeout: *timeout,
		Server: ServerCertDecision{Accept: *accept, Pin: *pin}}
	if env.Interactive {
		in := bufio.NewReader(env.Stdin)
		req.Server.Ask = func(fp string) (bool, error) {
			fmt.Fprintf(env.Stdout, "Certificate fingerprint: %s\nok (y/n/[fingerprint])? ", fp)
			line, err := in.ReadString('\n')
			if err != nil && line == "" {
				return false, errors.New("no answer: server certificate not accepted, nothing written")
			}
			line = strings.TrimSpace(line)
			if norm, err := NormalizeFingerprint(line); err == nil {
				if norm != fp {
					return false, fmt.Errorf("the fingerprint typed is not the server's (%s): refusing", fp)
				}
				return true, nil
			}
			return strings.HasPrefix(strings.ToLower(line), "y"), nil
		}
	}
	rep, err := AddRemote(req)
	if err != nil {
		return err
	}
	w := env.Stdout
	verb := "Added"
	if rep.Updated {
		verb = "Updated"
	}
	fmt.Fprintf(w, "%s remote %s: %s (in %s)\n", verb, rep.Name, rep.URL, rep.ConfigPath)
	if rep.ServerCertPath != "" {
		fmt.Fprintf(w, "Server certificate: %s (fingerprint %s)\n", rep.ServerCertPath, rep.ServerFingerprint)
	} else {
		fmt.Fprintf(w, "Server certificate: verified by the system CAs (fingerprint %s)\n", rep.ServerFingerprint)
	}
	if !rep.Trusted {
		fmt.Fprintf(w, "Trust: not trusted: the server does not know this client certificate (%s, %s in `incus config trust list`).\n",
			rep.ClientFingerprint, ShortFingerprint(rep.ClientFingerprint))
		fmt.Fprintf(w, "  Extract it into the inventory's incus/trusted-client-certs/, list it under incus_trusted_clients,\n  run host-incus-update, then run this add-remote again.\n")
		return nil
	}
	fmt.Fprintf(w, "Trust: trusted (client certificate %s)\n", ShortFingerprint(rep.ClientFingerprint))
	fmt.Fprintf(w, "Projects visible: %s\n", strings.Join(rep.Projects, ", "))
	if rep.Project != "" {
		fmt.Fprintf(w, "Default project of this remote: %s\n", rep.Project)
	}
	fmt.Fprintf(w, "Test it: incus list %s:   (or: incus remote switch %s && incus list)\n", rep.Name, rep.Name)
	return nil
}

func cmdListRemotes(args []string, env Env) error {
	fs := flag.NewFlagSet("list-remotes", flag.ContinueOnError)
	if _, err := parse(fs, args, 0, 0, "list-remotes"); err != nil {
		return err
	}
	dir, err := confDir(env)
	if err != nil {
		return err
	}
	remotes, err := ListRemotes(dir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tURL\tPROTOCOL\tAUTH\tPROJECT\tSERVER CERTIFICATE")
	for _, r := range remotes {
		name := r.Name
		if r.Default {
			name += " (current)"
		}
		auth, project, cert := r.AuthType, r.Project, r.ServerCert
		if r.Public {
			auth, project = "public", "-"
		}
		if strings.HasPrefix(r.URL, "unix:") {
			auth = "file access"
		}
		if auth == "" {
			auth = "-"
		}
		if cert == "" {
			cert = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, r.URL, r.Protocol, auth, project, cert)
	}
	return tw.Flush()
}

// stringList is a flag that may be repeated.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func cmdAddToInventory(args []string, env Env) error {
	fs := flag.NewFlagSet("add-to-inventory", flag.ContinueOnError)
	name := fs.String("name", "", "the client's name (default: the certificate's common name)")
	desc := fs.String("description", "", "what or who the client is")
	restricted := fs.Bool("restricted", false, "limit the client to --project")
	var projects stringList
	fs.Var(&projects, "project", "a project the client may use (repeat for more)")
	pos, err := parse(fs, args, 1, 1, "add-to-inventory <inventory.yaml> [--name N] [--description D] [--restricted] [--project P ...]")
	if err != nil {
		return err
	}
	dir, err := confDir(env)
	if err != nil {
		return err
	}
	cert, _, err := loadCertFile(dir + "/client.crt")
	if err != nil {
		return err
	}
	c := InventoryClient{Name: *name, Description: *desc, Restricted: *restricted, Projects: projects}
	if c.Name == "" {
		c.Name = cert.Cert.Subject.CommonName
		if ValidateClientName(c.Name) != nil {
			return fmt.Errorf("the certificate's common name %q cannot be a client name: give --name", c.Name)
		}
	}
	if c.Description == "" {
		c.Description = c.Name + " (added by incus-client-certs)"
	}
	res, err := AddToInventory(pos[0], cert, c)
	if err != nil {
		return err
	}
	if res.AlreadyThere {
		fmt.Fprintf(env.Stdout, "%s already lists %s with this certificate (%s): nothing changed\n", pos[0], c.Name, res.CertRel)
		return nil
	}
	fmt.Fprintf(env.Stdout, "Wrote %s\nAdded to all.vars.incus_trusted_clients in %s:\n%s", res.CertFile, pos[0], res.Entry)
	fmt.Fprintf(env.Stdout, "Next: commit both, run host-incus-update, then incus-client-certs add-remote <name> <address>\n")
	return nil
}
