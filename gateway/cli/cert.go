package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgegate/edgegate/certs"
)

const certUsage = `usage: edgegate cert list [--json]
       edgegate cert show ID [--json]
       edgegate cert issue [ID] --server|--client|--ca [--subject DN] [--host H]...
                 [--key-type T] [--validity D] [--ca-ref ID] [--name N]
                 [--auto-renew] [--client-ca] [--aia]
       edgegate cert import FILE.pem [KEY.pem] [--id ID] [--name N] [--client-ca]
       edgegate cert import FILE.p12 [--id ID] [--name N] [--client-ca]
                 [--password-stdin | --password P]
       edgegate cert export ID [--format pem|p12] [--out FILE] [--key-out FILE]
                 [--force] [--legacy] [--password-stdin | --password P]
       edgegate cert renew ID | --all
       edgegate cert revoke ID [--reason R]

Manages the gateway's certificate store through the running daemon.

issue    has the local CA (or the CA certificate --ca-ref of the store) issue
         a certificate and key; --host is a DNS name, IP address, URI or
         e-mail address (repeat it), --validity a duration such as 720h or
         90d, --key-type ecdsa-p256 (default), ecdsa-p384 or rsa-2048|3072|4096.
import   stores a PEM chain with its key (in FILE, or in KEY.pem) or a
         PKCS#12 file; without a key it is a trust-only certificate.
export   writes the chain and private key: PEM to standard output, or to
         --out (chain and key in one file) and --key-out (the key alone);
         PKCS#12 needs --out. Files holding a key get mode 0600; an existing
         file is only replaced with --force. The format follows --out's
         extension (.p12, .pfx) unless --format says otherwise.
renew    renews one certificate now, or with --all every auto-renewed one
         that is due.
revoke   revokes for an RFC 5280 reason (keyCompromise, superseded,
         cessationOfOperation, …; default unspecified) and publishes the CRL.

Passwords: an encrypted PEM key or a PKCS#12 file to import is opened with
--password P (for scripts; visible in the process list), else with one read
from the terminal (not echoed) or, when stdin is not a terminal, from its
first line; --password-stdin asks for that explicitly. A PKCS#12 export is
protected with --password P or --password-stdin (prompted twice on a
terminal); without either the gateway generates a password, which is
printed once on standard output and stored nowhere.
`

const caUsage = `usage: edgegate ca show [--pem | --json]
       edgegate ca rotate [--key-type T]
       edgegate ca rotate --finish

Shows and rotates the gateway's local CA through the running daemon.

show     the root's SHA-256 fingerprint and the issuers; --pem prints the
         trust bundle (the roots sensors must trust) instead.
rotate   starts a root rotation: a new root and intermediate; both roots
         are in the trust bundle until the rotation is finished. Give the
         sensors the new bundle (edgegate ca show --pem), then end the
         overlap with "edgegate ca rotate --finish": from then on only the
         new root is trusted.
`

// expiringWithin is how close to its end a certificate is listed as
// "expiring": the first of the gateway's expiry alarms.
const expiringWithin = 30 * 24 * time.Hour

// renewTimeout bounds "cert renew", which may wait for an ACME order (the
// daemon gives such routes four minutes).
const renewTimeout = 4*time.Minute + 30*time.Second

// Cert runs "edgegate cert VERB ..." (command "cert") or "edgegate ca VERB
// ..." (command "ca") against the running daemon and returns the exit code:
// 0 on success, 1 on failure, 2 for a wrong command line.
func Cert(ctx context.Context, command, dataDir string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &certCmd{d: newDaemon(dataDir), stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	if command == "ca" {
		return exit(stderr, "edgegate ca", caUsage, c.daemonNeeded(c.runCA(ctx, args)))
	}
	return exit(stderr, "edgegate cert", certUsage, c.daemonNeeded(c.runCert(ctx, args)))
}

// certCmd runs one certificate or CA command.
type certCmd struct {
	d              *daemon
	stdin          io.Reader
	stdout, stderr io.Writer
	now            func() time.Time
}

func (c *certCmd) daemonNeeded(err error) error {
	if errors.Is(err, errDaemonDown) {
		return fmt.Errorf("edgegate is not running (nothing answers on %s); certificates are managed by the daemon", c.d.socket)
	}
	return err
}

func isHelp(verb string) bool {
	return verb == "-h" || verb == "-help" || verb == "--help" || verb == "help"
}

// passwordFlags are --password and --password-stdin.
type passwordFlags struct {
	value    string
	set      bool
	useStdin bool
}

func (p *passwordFlags) register(fs *flag.FlagSet) {
	fs.Func("password", "the password (for scripts; visible in the process list)", func(s string) error {
		p.value, p.set = s, true
		return nil
	})
	fs.BoolVar(&p.useStdin, "password-stdin", false, "read the password from the terminal or stdin")
}

func (p *passwordFlags) check() error {
	if p.set && p.useStdin {
		return usagef("give --password or --password-stdin, not both")
	}
	return nil
}

func (c *certCmd) runCert(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("")
	}
	verb, args := args[0], args[1:]
	if isHelp(verb) {
		return errHelp
	}
	fs := newFlagSet("cert " + verb)
	switch verb {
	case "list":
		asJSON := fs.Bool("json", false, "print the API's JSON")
		pos, err := parseArgs(fs, args)
		if err != nil {
			return flagError(err)
		}
		if len(pos) != 0 {
			return usagef("cert list takes no arguments")
		}
		return c.list(ctx, *asJSON)
	case "show":
		asJSON := fs.Bool("json", false, "print the API's JSON")
		pos, err := parseArgs(fs, args)
		if err != nil {
			return flagError(err)
		}
		if len(pos) != 1 {
			return usagef("cert show takes exactly one ID")
		}
		return c.show(ctx, pos[0], *asJSON)
	case "issue":
		return c.issue(ctx, fs, args)
	case "import":
		return c.importCert(ctx, fs, args)
	case "export":
		return c.export(ctx, fs, args)
	case "renew":
		all := fs.Bool("all", false, "renew every auto-renewed certificate that is due")
		pos, err := parseArgs(fs, args)
		if err != nil {
			return flagError(err)
		}
		switch {
		case *all && len(pos) == 0:
			return c.renew(ctx, "")
		case !*all && len(pos) == 1:
			return c.renew(ctx, pos[0])
		}
		return usagef("cert renew takes one ID or --all")
	case "revoke":
		reason := fs.String("reason", "", "an RFC 5280 reason name, e.g. keyCompromise")
		pos, err := parseArgs(fs, args)
		if err != nil {
			return flagError(err)
		}
		if len(pos) != 1 {
			return usagef("cert revoke takes exactly one ID")
		}
		return c.revoke(ctx, pos[0], *reason)
	}
	return usagef("unknown verb %q", verb)
}

func certPath(id string) string { return "/api/v1/certificates/" + url.PathEscape(id) }

// printJSON writes an API answer indented.
func printJSON(w io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("decode the daemon's answer: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

func (c *certCmd) list(ctx context.Context, asJSON bool) error {
	var raw json.RawMessage
	if err := c.d.call(ctx, "GET", "/api/v1/certificates", nil, &raw); err != nil {
		return err
	}
	if asJSON {
		return printJSON(c.stdout, raw)
	}
	var list []certs.Certificate
	if err := json.Unmarshal(raw, &list); err != nil {
		return fmt.Errorf("decode the daemon's answer: %w", err)
	}
	now := c.now()
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSUBJECT\tEXPIRES\tSTATUS\tUSAGE")
	for _, ct := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ct.ID, subjectOf(ct), msTime(ct.To).Format(time.DateOnly),
			certStatus(ct, now), usageOf(ct))
	}
	return tw.Flush()
}

func (c *certCmd) show(ctx context.Context, id string, asJSON bool) error {
	var raw json.RawMessage
	if err := c.d.call(ctx, "GET", certPath(id), nil, &raw); err != nil {
		return err
	}
	if asJSON {
		return printJSON(c.stdout, raw)
	}
	var ct certs.Certificate
	if err := json.Unmarshal(raw, &ct); err != nil {
		return fmt.Errorf("decode the daemon's answer: %w", err)
	}
	return printCertificate(c.stdout, ct, c.now())
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// certStatus is the STATUS column: revoked, expired, invalid (not yet
// valid, a broken chain), expiring (within 30 days) or valid.
func certStatus(ct certs.Certificate, now time.Time) string {
	to := msTime(ct.To)
	switch {
	case ct.Revoked:
		return "revoked"
	case !now.Before(to):
		return "expired"
	case !ct.Valid:
		return "invalid"
	case to.Sub(now) < expiringWithin:
		return "expiring"
	}
	return "valid"
}

// statusDetail is the status as "cert show" words it.
func statusDetail(ct certs.Certificate, now time.Time) string {
	switch s := certStatus(ct, now); s {
	case "revoked":
		d := "revoked (" + orDash(ct.RevocationReason)
		if ct.RevokedAt != 0 {
			d += ", " + msTime(ct.RevokedAt).Format(time.DateTime) + " UTC"
		}
		return d + ")"
	case "invalid":
		return "invalid: " + ct.InvalidReason
	case "expiring":
		return fmt.Sprintf("expiring in %s", daysLeft(msTime(ct.To).Sub(now)))
	default:
		return s
	}
}

func daysLeft(d time.Duration) string {
	if days := int(d.Hours() / 24); days != 1 {
		return strconv.Itoa(days) + " days"
	}
	return "1 day"
}

func subjectOf(ct certs.Certificate) string {
	if ct.Subject != "" {
		return ct.Subject
	}
	if len(ct.SANs) > 0 {
		return ct.SANs[0]
	}
	return "-"
}

func usageOf(ct certs.Certificate) string {
	if len(ct.Usage) == 0 {
		return "-"
	}
	roles := make([]string, len(ct.Usage))
	for i, r := range ct.Usage {
		roles[i] = string(r)
	}
	return strings.Join(roles, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printCertificate writes the "cert show" block.
func printCertificate(w io.Writer, ct certs.Certificate, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("ID", ct.ID)
	row("Name", orDash(ct.Name))
	if ct.Description != "" {
		row("Description", ct.Description)
	}
	row("Subject", orDash(ct.Subject))
	row("Issuer", orDash(ct.Issuer))
	row("Serial", ct.Serial)
	row("Not before", msTime(ct.From).Format(time.DateTime)+" UTC")
	row("Not after", msTime(ct.To).Format(time.DateTime)+" UTC")
	row("Status", statusDetail(ct, now))
	row("SANs", orDash(strings.Join(ct.SANs, ", ")))
	key := ct.KeyType + ", private key held by the gateway"
	if !ct.HasKey {
		key = ct.KeyType + ", no private key (trust only)"
	}
	row("Key", key)
	row("SHA-256", ct.SHA256)
	var kind []string
	if ct.CA {
		kind = append(kind, "CA")
	}
	if ct.SelfSigned {
		kind = append(kind, "self-signed")
	}
	if ct.Client {
		kind = append(kind, "client")
	}
	if ct.ClientCA {
		kind = append(kind, "trusted for client certificates")
	}
	if len(kind) > 0 {
		row("Kind", strings.Join(kind, ", "))
	}
	source := string(ct.Source)
	if ct.CARef != "" {
		source += " (issued by " + ct.CARef + ")"
	}
	row("Source", source)
	row("Usage", usageOf(ct))
	row("Auto-renew", yesNo(ct.AutoRenew))
	rn := ct.Renewal
	if rn.Failures > 0 {
		row("Renewal", fmt.Sprintf("%d failed attempt(s), last: %s", rn.Failures, rn.LastError))
	}
	if rn.NextAttempt != 0 {
		row("Next attempt", msTime(rn.NextAttempt).Format(time.DateTime)+" UTC")
	}
	for i := len(rn.History) - 1; i >= 0; i-- {
		if e := rn.History[i]; e.OK {
			row("Last renewed", msTime(e.At).Format(time.DateTime)+" UTC")
			break
		}
	}
	return tw.Flush()
}

// hostList is a repeatable flag.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }

func (h *hostList) Set(s string) error {
	if s == "" {
		return errors.New("empty host")
	}
	*h = append(*h, s)
	return nil
}

// issueRequest is the body of POST /api/v1/certificates/_create.
type issueRequest struct {
	ID        string   `json:"id,omitempty"`
	Name      string   `json:"name,omitempty"`
	CARef     string   `json:"caRef,omitempty"`
	Subject   string   `json:"subject,omitempty"`
	Hosts     []string `json:"hosts,omitempty"`
	CA        bool     `json:"ca"`
	Client    bool     `json:"client"`
	Server    bool     `json:"server"`
	AIA       bool     `json:"includeAIA"`
	KeyType   string   `json:"keyType,omitempty"`
	Validity  string   `json:"validity,omitempty"`
	AutoRenew bool     `json:"autoRenew"`
	ClientCA  bool     `json:"clientCA"`
}

func (c *certCmd) issue(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var req issueRequest
	var hosts hostList
	var validity string
	fs.StringVar(&req.Subject, "subject", "", `subject DN, e.g. "CN=sensor-1,O=Acme"`)
	fs.Var(&hosts, "host", "a DNS name, IP address, URI or e-mail address (repeatable)")
	fs.BoolVar(&req.Server, "server", false, "a TLS server certificate")
	fs.BoolVar(&req.Client, "client", false, "a TLS client certificate")
	fs.BoolVar(&req.CA, "ca", false, "a CA certificate")
	fs.StringVar(&req.CARef, "ca-ref", "", "the CA certificate of the store that signs (default: the local CA)")
	fs.StringVar(&req.KeyType, "key-type", "", "ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096")
	fs.StringVar(&validity, "validity", "", "lifetime, e.g. 720h or 90d (default: the CA's)")
	fs.StringVar(&req.Name, "name", "", "display name (default: the subject's CN)")
	fs.BoolVar(&req.AutoRenew, "auto-renew", false, "renew automatically")
	fs.BoolVar(&req.ClientCA, "client-ca", false, "trust this CA certificate for client certificates")
	fs.BoolVar(&req.AIA, "aia", false, "include the CA issuers and CRL URLs")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) > 1 {
		return usagef("cert issue takes at most one ID")
	}
	if len(pos) == 1 {
		req.ID = pos[0]
	}
	if !req.Server && !req.Client && !req.CA {
		return usagef("say what the certificate is for: --server, --client and/or --ca")
	}
	if req.Subject == "" && len(hosts) == 0 {
		return usagef("give --subject or at least one --host")
	}
	if validity != "" {
		d, err := parseValidity(validity)
		if err != nil {
			return usagef("--validity: %v", err)
		}
		req.Validity = d.String()
	}
	req.Hosts = hosts
	var ct certs.Certificate
	if err := c.d.call(ctx, "POST", "/api/v1/certificates/_create", req, &ct); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "issued certificate %q for %s, valid until %s UTC\n", ct.ID, subjectOf(ct),
		msTime(ct.To).Format(time.DateTime))
	return nil
}

// parseValidity reads a Go duration ("720h") or a number of days ("90d").
func parseValidity(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration like 720h or 90d", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not positive", s)
	}
	return d, nil
}

// pemImport is the body of POST /api/v1/certificates.
type pemImport struct {
	ID         string  `json:"id,omitempty"`
	Name       string  `json:"name,omitempty"`
	Chain      string  `json:"chain"`
	PrivateKey string  `json:"privateKey,omitempty"`
	Password   *string `json:"password,omitempty"`
	ClientCA   bool    `json:"clientCA"`
}

// p12Import is the body of POST /api/v1/certificates/_import.
type p12Import struct {
	ID       string `json:"id,omitempty"`
	Name     string `json:"name,omitempty"`
	P12      string `json:"p12"`
	Password string `json:"password"`
	ClientCA bool   `json:"clientCA"`
}

func (c *certCmd) importCert(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var id, name string
	var clientCA bool
	var pw passwordFlags
	fs.StringVar(&id, "id", "", "the certificate's id (default: generated)")
	fs.StringVar(&name, "name", "", "display name (default: the subject's CN)")
	fs.BoolVar(&clientCA, "client-ca", false, "trust this CA certificate for client certificates")
	pw.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usagef("cert import takes a FILE and, for PEM, an optional KEY file")
	}
	if err := pw.check(); err != nil {
		return err
	}
	data, err := readInputFile(pos[0])
	if err != nil {
		return err
	}
	isPEM := bytes.Contains(data, []byte("-----BEGIN "))
	var keyData []byte
	if len(pos) == 2 {
		if !isPEM {
			return usagef("a KEY file goes with a PEM certificate, not with PKCS#12 %s", pos[0])
		}
		if keyData, err = readInputFile(pos[1]); err != nil {
			return err
		}
	}

	var path string
	var req any
	if isPEM {
		pr := pemImport{ID: id, Name: name, Chain: string(data), PrivateKey: string(keyData), ClientCA: clientCA}
		// Only an encrypted key needs a password; ask for none otherwise.
		encrypted := encryptedPEM(data) || encryptedPEM(keyData)
		if pw.set || pw.useStdin || encrypted {
			p, err := c.existingPassword(pw, "Key password: ")
			if err != nil {
				return err
			}
			pr.Password = &p
		}
		path, req = "/api/v1/certificates", pr
	} else {
		p, err := c.existingPassword(pw, "PKCS#12 password: ")
		if err != nil {
			return err
		}
		path = "/api/v1/certificates/_import"
		req = p12Import{ID: id, Name: name, P12: base64.StdEncoding.EncodeToString(data), Password: p, ClientCA: clientCA}
	}
	var ct certs.Certificate
	if err := c.d.call(ctx, "POST", path, req, &ct); err != nil {
		return err
	}
	what := "with its private key"
	if !ct.HasKey {
		what = "without a private key (trust only)"
	}
	fmt.Fprintf(c.stdout, "imported certificate %q for %s %s, valid until %s UTC\n", ct.ID, subjectOf(ct), what,
		msTime(ct.To).Format(time.DateTime))
	return nil
}

// encryptedPEM reports whether data holds an encrypted key: PKCS#8
// "ENCRYPTED PRIVATE KEY" or OpenSSL's legacy Proc-Type header.
func encryptedPEM(data []byte) bool {
	return bytes.Contains(data, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----")) ||
		bytes.Contains(data, []byte("Proc-Type: 4,ENCRYPTED"))
}

// maxInputFile bounds a file to import: the API takes 1 MiB bodies.
const maxInputFile = 1 << 20

func readInputFile(name string) ([]byte, error) {
	f, err := os.Open(name) //nolint:gosec // G304: the operator names the file to import
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxInputFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxInputFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a certificate file", name, maxInputFile)
	}
	return data, nil
}

// existingPassword is the password of a file to import: --password, else
// prompted once without echo on a terminal, else the first line of stdin.
func (c *certCmd) existingPassword(pw passwordFlags, prompt string) (string, error) {
	if pw.set {
		return pw.value, nil
	}
	if f, ok := c.stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(c.stderr, prompt)
		p, err := readPasswordNoEcho(f)
		fmt.Fprintln(c.stderr)
		return p, err
	}
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password on stdin (give --password, or pipe it as the first line)")
		}
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// exportRequest is the body of POST /api/v1/certificates/{id}/_export.
type exportRequest struct {
	Format   string `json:"format"`
	Password string `json:"password,omitempty"`
	Legacy   bool   `json:"legacy,omitempty"`
}

// exportResult is its answer.
type exportResult struct {
	Chain      string `json:"chain"`
	PrivateKey string `json:"privateKey"`
	P12        string `json:"p12"`
	Password   string `json:"password"`
}

func (c *certCmd) export(ctx context.Context, fs *flag.FlagSet, args []string) error {
	var format, out, keyOut string
	var force bool
	var req exportRequest
	var pw passwordFlags
	fs.StringVar(&format, "format", "", "pem or p12 (default: from --out's extension, else pem)")
	fs.StringVar(&out, "out", "", "write to FILE instead of standard output")
	fs.StringVar(&keyOut, "key-out", "", "write the PEM private key to FILE, apart from the chain")
	fs.BoolVar(&force, "force", false, "replace existing files")
	fs.BoolVar(&req.Legacy, "legacy", false, "PKCS#12 with 3DES/RC2 and SHA-1, for old devices")
	pw.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(err)
	}
	if len(pos) != 1 {
		return usagef("cert export takes exactly one ID")
	}
	if err := pw.check(); err != nil {
		return err
	}
	if format == "" {
		format = "pem"
		if ext := strings.ToLower(filepath.Ext(out)); ext == ".p12" || ext == ".pfx" {
			format = "p12"
		}
	}
	switch format {
	case "pem":
		if pw.set || pw.useStdin || req.Legacy {
			return usagef("--password, --password-stdin and --legacy go with --format p12")
		}
		if keyOut != "" && out == "" {
			return usagef("--key-out goes with --out (the chain's file)")
		}
		if keyOut != "" && filepath.Clean(keyOut) == filepath.Clean(out) {
			return usagef("--out and --key-out name the same file")
		}
	case "p12":
		if out == "" {
			return usagef("a PKCS#12 export needs --out FILE")
		}
		if keyOut != "" {
			return usagef("--key-out goes with --format pem")
		}
	default:
		return usagef("--format is pem or p12, not %q", format)
	}
	req.Format = format
	// Refuse before the key crosses the socket.
	if !force {
		for _, f := range []string{out, keyOut} {
			if f == "" {
				continue
			}
			if _, err := os.Lstat(f); err == nil {
				return fmt.Errorf("%s exists; give --force to replace it", f)
			}
		}
	}
	if format == "p12" {
		switch {
		case pw.set:
			req.Password = pw.value
		case pw.useStdin:
			if req.Password, err = readNewPassword(c.stdin, c.stderr); err != nil {
				return err
			}
		}
	}

	id := pos[0]
	var res exportResult
	if err := c.d.call(ctx, "POST", certPath(id)+"/_export", req, &res); err != nil {
		return err
	}
	switch {
	case format == "p12":
		der, err := base64.StdEncoding.DecodeString(res.P12)
		if err != nil {
			return fmt.Errorf("decode the daemon's answer: %w", err)
		}
		if err := writeNewFile(out, der, 0o600, force); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "exported %q with its private key to %s (PKCS#12)\n", id, out)
		if res.Password != "" {
			fmt.Fprintf(c.stdout, "PKCS#12 password (shown once, stored nowhere): %s\n", res.Password)
		}
	case out == "":
		_, err := io.WriteString(c.stdout, res.Chain+res.PrivateKey)
		return err
	case keyOut == "":
		if err := writeNewFile(out, []byte(res.Chain+res.PrivateKey), 0o600, force); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "exported %q with its private key to %s (PEM)\n", id, out)
	default:
		if err := writeNewFile(keyOut, []byte(res.PrivateKey), 0o600, force); err != nil {
			return err
		}
		if err := writeNewFile(out, []byte(res.Chain), 0o644, force); err != nil {
			_ = os.Remove(keyOut)
			return err
		}
		fmt.Fprintf(c.stdout, "exported %q: chain to %s, private key to %s (PEM)\n", id, out, keyOut)
	}
	return nil
}

// writeNewFile writes data to name with mode perm. Without replace an
// existing name is an error (O_EXCL: no symlink is followed); with it the
// file is written beside and renamed over, so name always holds either
// the old or the whole new content, with perm from the start.
func writeNewFile(name string, data []byte, perm os.FileMode, replace bool) (err error) {
	if !replace {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm) //nolint:gosec // G304: the operator names the output file
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists; give --force to replace it", name)
		}
		if err != nil {
			return err
		}
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(name)
			return fmt.Errorf("write %s: %w", name, err)
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	// CreateTemp made it 0600; a chain-only file may be readable by all.
	if err = f.Chmod(perm); err == nil {
		if _, err = f.Write(data); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return os.Rename(f.Name(), name)
}

func (c *certCmd) renew(ctx context.Context, id string) error {
	var body any
	if id != "" {
		body = map[string]string{"id": id}
	}
	var res struct {
		Renewed []string `json:"renewed"`
	}
	// A renewal may wait for an ACME CA: the daemon allows it minutes.
	ctx, cancel := context.WithTimeout(ctx, renewTimeout)
	defer cancel()
	if err := c.d.call(ctx, "POST", "/api/v1/certificates/_renew", body, &res); err != nil {
		return err
	}
	if len(res.Renewed) == 0 {
		fmt.Fprintln(c.stdout, "no certificate was due for renewal")
	}
	for _, r := range res.Renewed {
		fmt.Fprintf(c.stdout, "renewed certificate %q\n", r)
	}
	return nil
}

func (c *certCmd) revoke(ctx context.Context, id, reason string) error {
	var body any
	if reason != "" {
		body = map[string]string{"reason": reason}
	}
	var ct certs.Certificate
	if err := c.d.call(ctx, "POST", certPath(id)+"/_revoke", body, &ct); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "revoked certificate %q (serial %s, reason %s)\n", ct.ID, ct.Serial, orDash(ct.RevocationReason))
	return nil
}

// caView is the answer of /api/v1/ca.
type caView struct {
	RootFingerprint string `json:"rootFingerprint"`
	TrustBundle     string `json:"trustBundle"`
	Issuers         []struct {
		ID       string    `json:"id"`
		Kind     string    `json:"kind"`
		Active   bool      `json:"active"`
		Subject  string    `json:"subject"`
		NotAfter time.Time `json:"notAfter"`
	} `json:"issuers"`
}

// roots counts the roots of the trust bundle: two during a rotation.
func (v caView) roots() int { return strings.Count(v.TrustBundle, "-----BEGIN CERTIFICATE-----") }

func (c *certCmd) runCA(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("")
	}
	verb, args := args[0], args[1:]
	if isHelp(verb) {
		return errHelp
	}
	fs := newFlagSet("ca " + verb)
	switch verb {
	case "show":
		asPEM := fs.Bool("pem", false, "print the trust bundle")
		asJSON := fs.Bool("json", false, "print the API's JSON")
		pos, err := parseArgs(fs, args)
		if err != nil {
			return flagError(err)
		}
		if len(pos) != 0 {
			return usagef("ca show takes no arguments")
		}
		if *asPEM && *asJSON {
			return usagef("give --pem or --json, not both")
		}
		return c.showCA(ctx, *asPEM, *asJSON)
	case "rotate":
		keyType := fs.String("key-type", "", "key type of the new root (default: the current one's)")
		finish := fs.Bool("finish", false, "end the overlap: trust only the new root")
		pos, err := parseArgs(fs, args)
		if err != nil {
			return flagError(err)
		}
		if len(pos) != 0 {
			return usagef("ca rotate takes no arguments")
		}
		if *finish && *keyType != "" {
			return usagef("--key-type goes with starting a rotation, not with --finish")
		}
		if *finish {
			return c.finishRotation(ctx)
		}
		return c.rotate(ctx, *keyType)
	}
	return usagef("unknown verb %q", verb)
}

func (c *certCmd) showCA(ctx context.Context, asPEM, asJSON bool) error {
	var raw json.RawMessage
	if err := c.d.call(ctx, "GET", "/api/v1/ca", nil, &raw); err != nil {
		return err
	}
	if asJSON {
		return printJSON(c.stdout, raw)
	}
	var v caView
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("decode the daemon's answer: %w", err)
	}
	if asPEM {
		_, err := io.WriteString(c.stdout, v.TrustBundle)
		return err
	}
	fmt.Fprintf(c.stdout, "Root SHA-256:  %s\n", v.RootFingerprint)
	if n := v.roots(); n > 1 {
		fmt.Fprintf(c.stdout, "Trust bundle:  %d roots: a root rotation is in progress; finish it with \"edgegate ca rotate --finish\"\n", n)
	} else {
		fmt.Fprintf(c.stdout, "Trust bundle:  %d root\n", n)
	}
	fmt.Fprintln(c.stdout)
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ISSUER\tKIND\tACTIVE\tSUBJECT\tEXPIRES")
	for _, iss := range v.Issuers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", iss.ID, iss.Kind, yesNo(iss.Active), iss.Subject,
			iss.NotAfter.UTC().Format(time.DateOnly))
	}
	return tw.Flush()
}

func (c *certCmd) rotate(ctx context.Context, keyType string) error {
	var body any
	if keyType != "" {
		body = map[string]string{"keyType": keyType}
	}
	var v caView
	if err := c.d.call(ctx, "POST", "/api/v1/ca/_rotate_root", body, &v); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "root rotation started: new root SHA-256 %s\n", v.RootFingerprint)
	fmt.Fprintf(c.stdout, "The trust bundle holds the old and the new root (%d). Give it to every sensor\n", v.roots())
	fmt.Fprintln(c.stdout, `("edgegate ca show --pem"), then run "edgegate ca rotate --finish".`)
	return nil
}

func (c *certCmd) finishRotation(ctx context.Context) error {
	var v caView
	if err := c.d.call(ctx, "POST", "/api/v1/ca/_finish_rotation", nil, &v); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "root rotation finished: only root SHA-256 %s is trusted now\n", v.RootFingerprint)
	return nil
}
