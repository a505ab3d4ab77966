package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/gateway/store"
)

const userUsage = `usage: edgegate user add NAME [--superuser] [--password P]
       edgegate user passwd NAME [--password P]
       edgegate user delete NAME
       edgegate user list

Manages MQTT username/password accounts. Without --password the password is
read from the terminal (twice, not echoed) or, when stdin is not a
terminal, from its first line. With the daemon running the change goes
through its admin socket; otherwise the database is changed directly.
`

// userRow is one account as "user list" shows it (the API's user view).
type userRow struct {
	Username    string    `json:"username"`
	Superuser   bool      `json:"superuser"`
	HasPassword bool      `json:"has_password"`
	Created     time.Time `json:"created"`
}

// accounts is where the user verbs make their change: the daemon's API or
// the database.
type accounts interface {
	add(ctx context.Context, name, password string, superuser bool) error
	passwd(ctx context.Context, name, password string) error
	remove(ctx context.Context, name string) error
	list(ctx context.Context) ([]userRow, error)
}

// User runs "edgegate user VERB ..." and returns the exit code: 0 on
// success, 1 on failure, 2 for a wrong command line.
func User(ctx context.Context, dataDir string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return exit(stderr, "edgegate user", userUsage, runUser(ctx, dataDir, args, stdin, stdout, stderr))
}

func runUser(ctx context.Context, dataDir string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("")
	}
	verb, args := args[0], args[1:]
	fs := newFlagSet("user " + verb)
	var password string
	var superuser bool
	switch verb {
	case "add":
		fs.BoolVar(&superuser, "superuser", false, "the user may publish and subscribe anywhere")
		fs.StringVar(&password, "password", "", "the password (for scripts; visible in the process list)")
	case "passwd":
		fs.StringVar(&password, "password", "", "the new password")
	case "delete", "list":
	case "-h", "-help", "--help", "help":
		return errHelp
	default:
		return usagef("unknown verb %q", verb)
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(err)
	}
	passwordSet := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "password" {
			passwordSet = true
		}
	})
	want := 1
	if verb == "list" {
		want = 0
	}
	if len(pos) != want {
		if want == 0 {
			return usagef("user list takes no arguments")
		}
		return usagef("user %s takes exactly one NAME", verb)
	}
	var name string
	if want == 1 {
		name = pos[0]
	}

	if (verb == "add" || verb == "passwd") && !passwordSet {
		if password, err = readNewPassword(stdin, stderr); err != nil {
			return err
		}
	}
	if (verb == "add" || verb == "passwd") && password == "" {
		return errors.New("the password is empty")
	}

	op := func(acc accounts) error {
		switch verb {
		case "add":
			if err := acc.add(ctx, name, password, superuser); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "added user %q\n", name)
		case "passwd":
			if err := acc.passwd(ctx, name, password); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "changed the password of user %q\n", name)
		case "delete":
			if err := acc.remove(ctx, name); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "deleted user %q\n", name)
		case "list":
			rows, err := acc.list(ctx)
			if err != nil {
				return err
			}
			return printUsers(stdout, rows)
		}
		return nil
	}

	err = op(apiAccounts{newDaemon(dataDir)})
	if !errors.Is(err, errDaemonDown) {
		return err
	}
	st, err := store.Open(dataDir, store.Options{})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("the database is locked but edgegate does not answer on %s; is it starting or stopping?", newDaemon(dataDir).socket)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	users, err := auth.NewUsers(st.DB())
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "edgegate is not running: using the database directly")
	return op(storeAccounts{users: users, hash: hashSettings(st)})
}

// printUsers writes the "user list" table.
func printUsers(w io.Writer, rows []userRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tSUPERUSER\tPASSWORD\tCREATED")
	for _, r := range rows {
		created := "-"
		if !r.Created.IsZero() {
			created = r.Created.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Username, yesNo(r.Superuser), yesNo(r.HasPassword), created)
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// apiAccounts changes accounts through the daemon.
type apiAccounts struct{ d *daemon }

func userPath(name string) string { return "/api/v1/users/" + url.PathEscape(name) }

func (a apiAccounts) add(ctx context.Context, name, password string, superuser bool) error {
	body := map[string]any{"username": name, "password": password, "superuser": superuser}
	return a.d.call(ctx, "POST", "/api/v1/users", body, nil)
}

func (a apiAccounts) passwd(ctx context.Context, name, password string) error {
	return a.d.call(ctx, "PUT", userPath(name), map[string]any{"password": password}, nil)
}

func (a apiAccounts) remove(ctx context.Context, name string) error {
	return a.d.call(ctx, "DELETE", userPath(name), nil, nil)
}

func (a apiAccounts) list(ctx context.Context) ([]userRow, error) {
	var rows []userRow
	err := a.d.call(ctx, "GET", "/api/v1/users", nil, &rows)
	return rows, err
}

// hashConfig is how new passwords are hashed.
type hashConfig struct {
	kind       string
	iterations int
}

// hashSettings reads the password hash settings from the stored settings
// document. The image's settings file is not read here; a gateway that
// locks auth.password_hash there still gets the defaults' pbkdf2-sha256
// from the CLI, which every gateway verifies.
func hashSettings(st *store.Store) hashConfig {
	def := config.Defaults().Auth
	h := hashConfig{kind: def.PasswordHash, iterations: def.PBKDF2Iterations}
	cur, err := st.Settings()
	if err != nil {
		return h
	}
	eff, err := config.Load(config.Layers{Store: cur.Document})
	if err != nil {
		return h
	}
	return hashConfig{kind: eff.Config.Auth.PasswordHash, iterations: eff.Config.Auth.PBKDF2Iterations}
}

// storeAccounts changes accounts in the database, with the daemon stopped.
type storeAccounts struct {
	users *auth.Users
	hash  hashConfig
}

func (s storeAccounts) add(_ context.Context, name, password string, superuser bool) error {
	h, err := auth.NewHash(s.hash.kind, password, s.hash.iterations)
	if err != nil {
		return err
	}
	return storeError(s.users.Add(auth.User{Username: name, PasswordHash: h, Superuser: superuser}), name)
}

func (s storeAccounts) passwd(_ context.Context, name, password string) error {
	if _, err := s.users.Get(name); err != nil {
		return storeError(err, name)
	}
	h, err := auth.NewHash(s.hash.kind, password, s.hash.iterations)
	if err != nil {
		return err
	}
	return storeError(s.users.SetPassword(name, h), name)
}

func (s storeAccounts) remove(_ context.Context, name string) error {
	return storeError(s.users.Delete(name), name)
}

func (s storeAccounts) list(context.Context) ([]userRow, error) {
	us, err := s.users.List()
	if err != nil {
		return nil, err
	}
	rows := make([]userRow, 0, len(us))
	for _, u := range us {
		rows = append(rows, userRow{Username: u.Username, Superuser: u.Superuser, HasPassword: u.PasswordHash != "", Created: u.Created})
	}
	return rows, nil
}

// storeError words the store's errors like the API's answers.
func storeError(err error, name string) error {
	switch {
	case errors.Is(err, auth.ErrUserExists):
		return fmt.Errorf("user %q already exists", name)
	case errors.Is(err, auth.ErrUserNotFound):
		return fmt.Errorf("user %q not found", name)
	}
	return err
}

// readNewPassword reads a new password: prompted twice without echo on a
// terminal, else the first line of stdin.
func readNewPassword(stdin io.Reader, prompt io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(prompt, "Password: ")
		p1, err := readPasswordNoEcho(f)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		fmt.Fprint(prompt, "Repeat password: ")
		p2, err := readPasswordNoEcho(f)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		if p1 != p2 {
			return "", errors.New("the passwords do not match")
		}
		return p1, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password on stdin (give --password, or pipe it as the first line)")
		}
		return "", fmt.Errorf("read the password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
