package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgegate/edgegate/certs/trust"
	"github.com/edgegate/edgegate/certs/trustsync"
	"github.com/edgegate/edgegate/certs/vault"
)

const trustUsage = `usage: edgegate trust list [trust|issuer]
       edgegate trust show LIST ID
       edgegate trust upload LIST FILE [--name N]
       edgegate trust delete LIST ID
       edgegate trust add LIST NAME
       edgegate trust staged
       edgegate trust apply [VERSION] [--yes]
       edgegate trust discard
       edgegate trust versions
       edgegate trust rollback [--yes]
       edgegate trust sync [--now]
       edgegate trust vault
       edgegate trust fleet

Manages the gateway's trust list (the CA certificates it accepts client
certificates from) and issuer list (intermediate certificates, with their
CRLs) through the running daemon. LIST is trust or issuer.

A change is not live at once: upload, delete, add and a vault sync each make
a staged version. "staged" shows what it adds, removes and changes, and the
certificates it rejected with the reasons; "apply" makes it live for the
next TLS handshake, without restarting a listener.

list      the applied entries, of both lists or of one.
show      one applied entry's details, then its PEM.
upload    stages a PEM or DER file of certificates (and CRLs); --name names
          the entry (default: the first certificate's CN).
delete    stages removing an entry. A synced entry stays in the vault, and
          syncs leave it out until "add" brings it back.
add       stages a certificate secret of the vault ("vault" lists them).
apply     applies the staged version (VERSION, when given, must be it). If
          that removes CAs that connected clients use, or empties the trust
          list, apply says so and stops; --yes applies anyway.
discard   drops the staged version.
versions  the history of versions.
rollback  applies again the entries of the version applied before the
          current one (--yes as for apply).
sync      the vault sync's state; --now syncs at once.
vault     the vault's certificate secrets.
fleet     what every gateway of the fleet last reported to the vault.
`

// Trust runs "edgegate trust VERB ..." against the running daemon and
// returns the exit code: 0 on success, 1 on failure, 2 for a wrong command
// line.
func Trust(ctx context.Context, dataDir string, args []string, stdout, stderr io.Writer) int {
	c := &trustCmd{d: newDaemon(dataDir), stdout: stdout}
	return exit(stderr, "edgegate trust", trustUsage, c.daemonNeeded(c.run(ctx, args)))
}

// trustCmd runs one trust command.
type trustCmd struct {
	d      *daemon
	stdout io.Writer
}

func (c *trustCmd) daemonNeeded(err error) error {
	if errors.Is(err, errDaemonDown) {
		return fmt.Errorf("edgegate is not running (nothing answers on %s); the trust lists are managed by the daemon", c.d.socket)
	}
	return err
}

// The answers of the trust API (gateway/api/trust.go).
type (
	// stagedVersion is a version with its diff against the applied one.
	stagedVersion struct {
		trust.Version
		Diff trust.Diff `json:"diff"`
	}
	trustOverview struct {
		Applied trust.Version    `json:"applied"`
		Staged  *stagedVersion   `json:"staged,omitempty"`
		Sync    trustsync.Status `json:"sync"`
	}
	trustEntry struct {
		trust.Entry
		PEM string `json:"pem"`
	}
)

func (c *trustCmd) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("")
	}
	verb, args := args[0], args[1:]
	if isHelp(verb) {
		return errHelp
	}
	fs := newFlagSet("trust " + verb)
	switch verb {
	case "list":
		pos, err := positional(fs, args, 0, 1, "trust list takes at most one LIST")
		if err != nil {
			return err
		}
		var list trust.ListName
		if len(pos) == 1 {
			if list, err = listArg(pos[0]); err != nil {
				return err
			}
		}
		return c.list(ctx, list)
	case "show", "delete", "add":
		what := "an ID"
		if verb == "add" {
			what = "the NAME of a vault secret"
		}
		pos, err := positional(fs, args, 2, 2, "trust %s takes a LIST and %s", verb, what)
		if err != nil {
			return err
		}
		list, err := listArg(pos[0])
		if err != nil {
			return err
		}
		switch verb {
		case "show":
			return c.show(ctx, list, pos[1])
		case "delete":
			return c.delete(ctx, list, pos[1])
		}
		return c.add(ctx, list, pos[1])
	case "upload":
		name := fs.String("name", "", "the entry's name (default: the first certificate's CN)")
		pos, err := positional(fs, args, 2, 2, "trust upload takes a LIST and a FILE")
		if err != nil {
			return err
		}
		list, err := listArg(pos[0])
		if err != nil {
			return err
		}
		return c.upload(ctx, list, pos[1], *name)
	case "apply":
		yes := fs.Bool("yes", false, "apply even if connected clients lose their CA or the trust list becomes empty")
		pos, err := positional(fs, args, 0, 1, "trust apply takes at most one VERSION")
		if err != nil {
			return err
		}
		var n uint64
		if len(pos) == 1 {
			if n, err = strconv.ParseUint(pos[0], 10, 64); err != nil || n == 0 {
				return usagef("VERSION %q is not a version number", pos[0])
			}
		}
		return c.apply(ctx, n, *yes)
	case "rollback":
		yes := fs.Bool("yes", false, "roll back even if connected clients lose their CA or the trust list becomes empty")
		if _, err := positional(fs, args, 0, 0, "trust rollback takes no arguments"); err != nil {
			return err
		}
		return c.rollback(ctx, *yes)
	case "sync":
		now := fs.Bool("now", false, "sync with the vault at once")
		if _, err := positional(fs, args, 0, 0, "trust sync takes no arguments"); err != nil {
			return err
		}
		return c.sync(ctx, *now)
	case "staged", "discard", "versions", "vault", "fleet":
		if _, err := positional(fs, args, 0, 0, "trust %s takes no arguments", verb); err != nil {
			return err
		}
		switch verb {
		case "staged":
			return c.staged(ctx)
		case "discard":
			return c.discard(ctx)
		case "versions":
			return c.versions(ctx)
		case "vault":
			return c.vault(ctx)
		}
		return c.fleet(ctx)
	}
	return usagef("unknown verb %q", verb)
}

// positional parses args and checks that min to max positional arguments
// remain; otherwise the usage error says format.
func positional(fs *flag.FlagSet, args []string, low, high int, format string, a ...any) ([]string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, flagError(err)
	}
	if len(pos) < low || len(pos) > high {
		return nil, usagef(format, a...)
	}
	return pos, nil
}

// listArg checks a LIST argument here, so that a typo is a usage error and
// never reaches a neighbouring route such as /api/v1/trust/versions.
func listArg(s string) (trust.ListName, error) {
	l, err := trust.ParseListName(s)
	if err != nil {
		return "", usagef("LIST is %q or %q, not %q", trust.TrustList, trust.IssuerList, s)
	}
	return l, nil
}

const trustPath = "/api/v1/trust"

func entryPath(list trust.ListName, id string) string {
	return trustPath + "/" + string(list) + "/" + url.PathEscape(id)
}

// confirmationRequired is the 409 "confirmation_required" answer of apply
// and rollback: nothing changed, and retry says how to go ahead.
type confirmationRequired struct {
	sessions int
	cas      []string
	empties  bool
	retry    string
}

func (e *confirmationRequired) Error() string {
	var why []string
	if e.sessions > 0 {
		why = append(why, fmt.Sprintf("it removes CAs that %d connected client session(s) use (%s): those clients could not connect again",
			e.sessions, orDash(strings.Join(e.cas, ", "))))
	}
	if e.empties {
		why = append(why, "it empties the trust list: no client certificate would be accepted")
	}
	return fmt.Sprintf("not applied: %s.\nNothing was changed; run %q to go ahead anyway", strings.Join(why, ", and "), e.retry)
}

// confirmationOf turns a "confirmation_required" answer into a
// *confirmationRequired that says to run retry; other errors pass.
func confirmationOf(err error, retry string) error {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Code != "confirmation_required" || ae.Confirmation == nil {
		return err
	}
	c := ae.Confirmation
	return &confirmationRequired{sessions: c.Sessions, cas: c.CAs, empties: c.EmptiesTrustList, retry: retry}
}

func (c *trustCmd) overview(ctx context.Context) (trustOverview, error) {
	var o trustOverview
	err := c.d.call(ctx, "GET", trustPath, nil, &o)
	return o, err
}

func (c *trustCmd) list(ctx context.Context, list trust.ListName) error {
	o, err := c.overview(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	// The ID is the start of the SHA-256 fingerprint: "show" has it whole.
	fmt.Fprintln(tw, "LIST\tNAME\tSOURCE\tNOT-AFTER\tID")
	for _, e := range o.Applied.Entries {
		if list != "" && e.List != list {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.List, e.Name, e.Source.Kind, e.NotAfter.UTC().Format(time.DateOnly), e.ID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if o.Staged != nil {
		fmt.Fprintf(c.stdout, "\nVersion %d is staged, not applied: see \"edgegate trust staged\".\n", o.Staged.Number)
	}
	return nil
}

func (c *trustCmd) show(ctx context.Context, list trust.ListName, id string) error {
	var e trustEntry
	if err := c.d.call(ctx, "GET", entryPath(list, id), nil, &e); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("ID", e.ID)
	row("List", string(e.List))
	row("Name", e.Name)
	row("Source", sourceDetail(e.Source))
	row("Subject", orDash(e.Subject))
	row("Issuer", orDash(e.Issuer))
	row("Serial", e.Serial)
	row("Not before", utcTime(e.NotBefore))
	row("Not after", utcTime(e.NotAfter))
	var kind []string
	if e.IsCA {
		pathLen := "unlimited path length"
		if e.MaxPathLen >= 0 {
			pathLen = fmt.Sprintf("path length %d", e.MaxPathLen)
		}
		kind = append(kind, "CA ("+pathLen+")")
	}
	if e.SelfSigned {
		kind = append(kind, "self-signed")
	}
	row("Kind", orDash(strings.Join(kind, ", ")))
	crl := "none"
	if e.HasCRL {
		crl = "yes"
		if !e.CRLNextUpdate.IsZero() {
			crl += ", next update " + utcTime(e.CRLNextUpdate)
		}
	}
	row("CRL", crl)
	row("SHA-256", e.Fingerprint)
	row("Added", utcTime(e.AddedAt)+" by "+orDash(e.AddedBy))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(c.stdout, "\n%s", e.PEM)
	return err
}

func sourceDetail(s trust.Source) string {
	switch s.Kind {
	case trust.SourceVault:
		return fmt.Sprintf("vault secret %q, version %d", s.Name, s.Version)
	case trust.SourceUpload:
		return fmt.Sprintf("uploaded as %q (not in the vault)", s.Name)
	}
	return orDash(string(s.Kind))
}

// utcTime is how the detail blocks write a time, as "cert show" does.
func utcTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateTime) + " UTC"
}

// tableTime is how the tables write a time, as "trace list" does.
func tableTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func (c *trustCmd) upload(ctx context.Context, list trust.ListName, file, name string) error {
	data, err := readInputFile(file)
	if err != nil {
		return err
	}
	// The raw body keeps DER intact; the API's JSON form takes PEM text only.
	contentType := "application/pkix-cert"
	if bytes.Contains(data, []byte("-----BEGIN ")) {
		contentType = "application/x-pem-file"
	}
	path := trustPath + "/" + string(list)
	if name != "" {
		path += "?name=" + url.QueryEscape(name)
	}
	var v stagedVersion
	if err := c.d.call(ctx, "POST", path, rawBody{contentType: contentType, data: data}, &v); err != nil {
		return err
	}
	return printStaged(c.stdout, v)
}

func (c *trustCmd) delete(ctx context.Context, list trust.ListName, id string) error {
	var v stagedVersion
	if err := c.d.call(ctx, "DELETE", entryPath(list, id), nil, &v); err != nil {
		return err
	}
	if err := printStaged(c.stdout, v); err != nil {
		return err
	}
	// A synced entry leaves a tombstone with its fingerprint.
	for _, t := range v.Removed {
		if t.List == list && strings.HasPrefix(t.Fingerprint, strings.ToLower(id)) {
			fmt.Fprintf(c.stdout, "\n%q stays in the vault (this deletes it on this gateway only); syncs leave it out\nuntil \"edgegate trust add %s %s\".\n",
				t.Name, list, t.Name)
		}
	}
	return nil
}

func (c *trustCmd) add(ctx context.Context, list trust.ListName, name string) error {
	var v stagedVersion
	if err := c.d.call(ctx, "POST", trustPath+"/"+string(list)+"/from-vault", map[string]string{"name": name}, &v); err != nil {
		return err
	}
	return printStaged(c.stdout, v)
}

func (c *trustCmd) staged(ctx context.Context) error {
	o, err := c.overview(ctx)
	if err != nil {
		return err
	}
	if o.Staged == nil {
		fmt.Fprintf(c.stdout, "No version is staged; version %d is applied.\n", o.Applied.Number)
		return nil
	}
	return printStaged(c.stdout, *o.Staged)
}

// printStaged writes a staged version: what it changes against the applied
// one, what it rejected and why, and the next step.
func printStaged(w io.Writer, v stagedVersion) error {
	fmt.Fprintf(w, "Version %d is staged (%s by %s, %s)", v.Number, v.Origin, orDash(v.CreatedBy), utcTime(v.CreatedAt))
	if v.Note != "" {
		fmt.Fprintf(w, ": %s", v.Note)
	}
	fmt.Fprintf(w, ".\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if v.Diff.Empty() {
		fmt.Fprintf(tw, "It changes nothing against the applied version %d.\n", v.Diff.From)
	} else {
		fmt.Fprintf(tw, "Changes against the applied version %d:\n", v.Diff.From)
		for _, e := range v.Diff.Added {
			fmt.Fprintf(tw, "  +\t%s\t%s\t%s\tuntil %s\n", e.List, e.Name, e.ID, e.NotAfter.UTC().Format(time.DateOnly))
		}
		for _, e := range v.Diff.Removed {
			fmt.Fprintf(tw, "  -\t%s\t%s\t%s\tuntil %s\n", e.List, e.Name, e.ID, e.NotAfter.UTC().Format(time.DateOnly))
		}
		for _, ch := range v.Diff.Changed {
			what := "new certificate, was " + ch.From.ID
			if ch.From.Fingerprint == ch.To.Fingerprint {
				what = "new CRL"
			}
			fmt.Fprintf(tw, "  ~\t%s\t%s\t%s\t%s\n", ch.To.List, ch.To.Name, ch.To.ID, what)
		}
	}
	if len(v.Rejected) > 0 {
		fmt.Fprintf(tw, "\nRejected, not part of the version:\n")
		for _, r := range v.Rejected {
			fmt.Fprintf(tw, "  !\t%s\t%s\t%s\n", r.List, r.Name, r.Reason)
		}
	}
	if len(v.Removed) > 0 {
		fmt.Fprintf(tw, "\nVault secrets deleted here, left out of syncs:\n")
		for _, t := range v.Removed {
			fmt.Fprintf(tw, "  x\t%s\t%s\tby %s, %s\n", t.List, t.Name, orDash(t.RemovedBy), utcTime(t.RemovedAt))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nApply it with \"edgegate trust apply\", or drop it with \"edgegate trust discard\".\n")
	return err
}

// confirmBody is the body of apply and rollback: none unless confirmed.
func confirmBody(yes bool) any {
	if yes {
		return map[string]bool{"confirm": true}
	}
	return nil
}

func (c *trustCmd) apply(ctx context.Context, n uint64, yes bool) error {
	if n == 0 {
		o, err := c.overview(ctx)
		if err != nil {
			return err
		}
		if o.Staged == nil {
			return fmt.Errorf("no version is staged (version %d is applied)", o.Applied.Number)
		}
		n = o.Staged.Number
	}
	var v trust.Version
	err := c.d.call(ctx, "POST", fmt.Sprintf("%s/versions/%d/apply", trustPath, n), confirmBody(yes), &v)
	if err != nil {
		return confirmationOf(err, fmt.Sprintf("edgegate trust apply %d --yes", n))
	}
	fmt.Fprintf(c.stdout, "Applied version %d", v.Number)
	return printApplied(c.stdout, v)
}

func (c *trustCmd) rollback(ctx context.Context, yes bool) error {
	var v trust.Version
	err := c.d.call(ctx, "POST", trustPath+"/versions/rollback", confirmBody(yes), &v)
	if err != nil {
		return confirmationOf(err, "edgegate trust rollback --yes")
	}
	fmt.Fprintf(c.stdout, "Rolled back: applied version %d", v.Number)
	return printApplied(c.stdout, v)
}

// printApplied ends the line an apply or rollback began.
func printApplied(w io.Writer, v trust.Version) error {
	fmt.Fprintf(w, ": %d trust anchor(s), %d issuer(s).\n", v.Counts.Trust, v.Counts.Issuer)
	for _, r := range v.Rejected {
		fmt.Fprintf(w, "Rejected: %s %q: %s\n", r.List, r.Name, r.Reason)
	}
	if v.PublishError != "" {
		fmt.Fprintf(w, "Not published to the vault (the entries stay local; the next apply tries again): %s\n", v.PublishError)
	}
	return nil
}

func (c *trustCmd) discard(ctx context.Context) error {
	if err := c.d.call(ctx, "DELETE", trustPath+"/versions/staged", nil, nil); err != nil {
		return err
	}
	_, err := fmt.Fprintln(c.stdout, "Discarded the staged version.")
	return err
}

func (c *trustCmd) versions(ctx context.Context) error {
	var vs []trust.Version
	if err := c.d.call(ctx, "GET", trustPath+"/versions", nil, &vs); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tSTATE\tORIGIN\tBY\tAT\tCOUNTS")
	for _, v := range vs {
		counts := fmt.Sprintf("trust=%d issuer=%d", v.Counts.Trust, v.Counts.Issuer)
		if v.Counts.Rejected > 0 {
			counts += fmt.Sprintf(" rejected=%d", v.Counts.Rejected)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", v.Number, v.State, v.Origin, orDash(v.CreatedBy), tableTime(v.CreatedAt), counts)
	}
	return tw.Flush()
}

func (c *trustCmd) sync(ctx context.Context, now bool) error {
	if now {
		var st trustsync.Status
		if err := c.d.call(ctx, "POST", trustPath+"/sync", nil, &st); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		r := st.LastResult
		fmt.Fprintf(c.stdout, "Synced: %d secret(s) listed, %d fetched in %s.\n\n", r.Listed, r.Fetched, r.Duration.Round(time.Millisecond))
	}
	// The overview holds the status and whether the sync staged a version.
	o, err := c.overview(ctx)
	if err != nil {
		return err
	}
	if err := printSyncStatus(c.stdout, o.Sync); err != nil {
		return err
	}
	if o.Staged != nil {
		fmt.Fprintf(c.stdout, "\nVersion %d is staged, not applied: see \"edgegate trust staged\".\n", o.Staged.Number)
	}
	return nil
}

func printSyncStatus(w io.Writer, st trustsync.Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	if !st.Enabled {
		row("Vault sync", "off (no vault is configured)")
		row("Device", orDash(st.DeviceID))
		return tw.Flush()
	}
	row("Vault sync", "on")
	row("Address", orDash(st.Address))
	row("Path", orDash(st.Path))
	row("Auth", orDash(st.Method))
	row("Device", orDash(st.DeviceID))
	row("Last success", utcTime(st.LastSuccess))
	if st.LastError != "" {
		row("Last error", fmt.Sprintf("%s (%s, %d failure(s) in a row)", st.LastError, utcTime(st.LastAttempt), st.ConsecutiveFailures))
	} else {
		row("Last error", "-")
	}
	row("Next attempt", utcTime(st.NextAttempt))
	row("Syncs", fmt.Sprintf("%d succeeded, %d failed", st.Syncs, st.Errors))
	return tw.Flush()
}

func (c *trustCmd) vault(ctx context.Context) error {
	var refs []vault.Ref
	if err := c.d.call(ctx, "GET", trustPath+"/vault", nil, &refs); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LIST\tNAME\tVERSION")
	for _, r := range refs {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", r.List, r.Name, r.Version)
	}
	return tw.Flush()
}

func (c *trustCmd) fleet(ctx context.Context) error {
	var devices []vault.DeviceStatus
	if err := c.d.call(ctx, "GET", trustPath+"/fleet", nil, &devices); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tHOSTNAME\tVERSION\tSYNCED\tLAST-ERROR")
	for _, d := range devices {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", d.DeviceID, orDash(d.Hostname), d.AppliedVersion, tableTime(d.SyncedAt), orDash(d.LastError))
	}
	return tw.Flush()
}
