package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/edgegate/edgegate/gateway/admin"
	"github.com/edgegate/edgegate/gateway/auth"
	"github.com/edgegate/edgegate/gateway/config"
	"github.com/edgegate/edgegate/provisioning"
)

const provisionUsage = `usage: edgegate provision keygen --out KEY [--force]
       edgegate provision sign --key KEY [--out SIG] BUNDLE
       edgegate provision verify --pub PUB [--sig SIG] [--device ID] BUNDLE
       edgegate provision apply [--sig SIG] BUNDLE
       edgegate provision hash-password [--iterations N]

Makes, signs and checks provisioning bundles (edgegate-provision.json) and
hands one to the running daemon. SIG defaults to BUNDLE.sig.

keygen         writes a new Ed25519 signing key to KEY (PEM PKCS #8, mode
               0600) and its public key to KEY.pub (PEM), which goes into
               the image's /etc/edgegate/provisioning-keys/. Keep KEY off
               the gateways.
sign           checks BUNDLE as a gateway would (schema, hashes,
               certificates, expiry) and writes its signature: the raw
               64-byte Ed25519 signature of the file's exact bytes.
verify         checks BUNDLE and its signature with the public key(s) PUB,
               a .pub file or a directory of them, for device ID (default:
               the device the bundle names).
apply          sends BUNDLE and its signature to the daemon over the admin
               socket and prints its report.
hash-password  reads a password (twice on a terminal, else the first line
               of stdin), checks the admin password policy and prints its
               hash for "admin_password_hash" (an MQTT user's
               {"kind": "", "hash": ...} takes it too).
`

// Provision runs "edgegate provision VERB ..." and returns the exit code: 0
// on success, 1 on failure (a refused bundle), 2 for a wrong command line.
func Provision(ctx context.Context, dataDir string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	p := &provisionCmd{d: newDaemon(dataDir), stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	return exit(stderr, "edgegate provision", provisionUsage, p.run(ctx, args))
}

// provisionCmd runs one provisioning command.
type provisionCmd struct {
	d              *daemon
	stdin          io.Reader
	stdout, stderr io.Writer
	now            func() time.Time
}

func (p *provisionCmd) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("")
	}
	verb, args := args[0], args[1:]
	if isHelp(verb) {
		return errHelp
	}
	fs := newFlagSet("provision " + verb)
	var one func(pos []string) error
	switch verb {
	case "keygen":
		out := fs.String("out", "", "the private key file to write; the public key goes to its name plus .pub")
		force := fs.Bool("force", false, "replace existing files")
		one = func(pos []string) error {
			if len(pos) != 0 || *out == "" {
				return usagef("provision keygen takes --out KEY and no arguments")
			}
			return p.keygen(*out, *force)
		}
	case "sign":
		key := fs.String("key", "", "the private key file")
		out := fs.String("out", "", "the signature file (default BUNDLE.sig)")
		one = func(pos []string) error {
			if len(pos) != 1 || *key == "" {
				return usagef("provision sign takes --key KEY and one BUNDLE")
			}
			return p.sign(*key, pos[0], orDefault(*out, pos[0]+".sig"))
		}
	case "verify":
		pub := fs.String("pub", "", "a public key file or a directory of *.pub files")
		sig := fs.String("sig", "", "the signature file (default BUNDLE.sig)")
		device := fs.String("device", "", "the gateway's device id (default: the one the bundle names)")
		one = func(pos []string) error {
			if len(pos) != 1 || *pub == "" {
				return usagef("provision verify takes --pub PUB and one BUNDLE")
			}
			return p.verify(*pub, pos[0], orDefault(*sig, pos[0]+".sig"), *device)
		}
	case "apply":
		sig := fs.String("sig", "", "the signature file (default BUNDLE.sig)")
		one = func(pos []string) error {
			if len(pos) != 1 {
				return usagef("provision apply takes one BUNDLE")
			}
			return p.apply(ctx, pos[0], orDefault(*sig, pos[0]+".sig"))
		}
	case "hash-password":
		iterations := fs.Int("iterations", auth.DefaultPBKDF2Iterations, "the PBKDF2-SHA256 work factor")
		one = func(pos []string) error {
			if len(pos) != 0 {
				return usagef("provision hash-password takes no arguments")
			}
			return p.hashPassword(*iterations)
		}
	default:
		return usagef("unknown verb %q", verb)
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagError(err)
	}
	return one(pos)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (p *provisionCmd) keygen(out string, force bool) error {
	priv, err := provisioning.GenerateKey()
	if err != nil {
		return err
	}
	privPEM, err := provisioning.EncodePrivateKey(priv)
	if err != nil {
		return err
	}
	pub := priv.Public().(ed25519.PublicKey)
	pubPEM, err := provisioning.EncodePublicKey(pub)
	if err != nil {
		return err
	}
	if err := writeNewFile(out, privPEM, 0o600, force); err != nil {
		return err
	}
	if err := writeNewFile(out+".pub", pubPEM, 0o644, force); err != nil {
		_ = os.Remove(out)
		return err
	}
	fmt.Fprintf(p.stdout, "wrote the signing key to %s and its public key (%s) to %s.pub:\n%s",
		out, provisioning.Fingerprint(pub), out, pubPEM)
	return nil
}

// targetDevice is device, or for "" the device the bundle names: an
// offline check is for the gateway the bundle is meant for.
func targetDevice(data []byte, device string) (string, error) {
	if device != "" {
		return device, nil
	}
	b, err := provisioning.Parse(data)
	if err != nil {
		return "", err
	}
	return b.Device, nil
}

func (p *provisionCmd) sign(keyFile, bundleFile, sigFile string) error {
	keyPEM, err := provisioning.ReadFile(keyFile, 64<<10)
	if err != nil {
		return err
	}
	priv, err := provisioning.ParsePrivateKey(keyPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", keyFile, err)
	}
	data, err := provisioning.ReadFile(bundleFile, provisioning.MaxBundleBytes)
	if err != nil {
		return err
	}
	device, err := targetDevice(data, "")
	if err != nil {
		return fmt.Errorf("%s: %w; not signed", bundleFile, err)
	}
	plan, err := provisioning.Check(data, p.now(), device)
	if err != nil {
		return fmt.Errorf("%s: %w; not signed", bundleFile, err)
	}
	if err := writeNewFile(sigFile, provisioning.Sign(priv, data), 0o644, true); err != nil {
		return err
	}
	fmt.Fprintf(p.stdout, "signed %s with %s into %s\n", bundleFile, provisioning.Fingerprint(priv.Public().(ed25519.PublicKey)), sigFile)
	p.describe(plan)
	return nil
}

func (p *provisionCmd) verify(pubPath, bundleFile, sigFile, device string) error {
	keys, err := provisioning.LoadPublicKeys(pubPath)
	if err != nil {
		return err
	}
	data, sig, err := readBundle(bundleFile, sigFile)
	if err != nil {
		return err
	}
	// The signature first: what it does not cover is not worth reading.
	key, err := provisioning.Verify(data, sig, keys)
	if err != nil {
		return fmt.Errorf("%s: refused: %w", bundleFile, err)
	}
	if device, err = targetDevice(data, device); err != nil {
		return fmt.Errorf("%s: refused: %w", bundleFile, err)
	}
	plan, err := provisioning.Check(data, p.now(), device)
	if err != nil {
		return fmt.Errorf("%s: refused: %w", bundleFile, err)
	}
	fmt.Fprintf(p.stdout, "%s is valid: signed by %s (%s)\n", bundleFile, key.Fingerprint(), key.Source)
	p.describe(plan)
	return nil
}

// describe prints what a checked bundle is for and what it changes.
func (p *provisionCmd) describe(plan *provisioning.Plan) {
	device := plan.Device
	if device == "" || device == provisioning.AnyDevice {
		device = "any"
	}
	fmt.Fprintf(p.stdout, "device:  %s\nexpires: %s\n", device, plan.ExpiresAt.UTC().Format(time.RFC3339))
	for _, part := range plan.Parts() {
		fmt.Fprintf(p.stdout, "applies: %s\n", part)
	}
}

// readBundle reads a bundle and its signature file. A missing signature
// is left to the check, which names it.
func readBundle(bundleFile, sigFile string) (data, sig []byte, err error) {
	if data, err = provisioning.ReadFile(bundleFile, provisioning.MaxBundleBytes); err != nil {
		return nil, nil, err
	}
	sig, err = provisioning.ReadFile(sigFile, 4<<10)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	return data, sig, nil
}

func (p *provisionCmd) apply(ctx context.Context, bundleFile, sigFile string) error {
	data, sig, err := readBundle(bundleFile, sigFile)
	if err != nil {
		return err
	}
	var rep provisioning.Report
	err = p.d.call(ctx, "POST", "/api/v1/provision", map[string][]byte{"bundle": data, "signature": sig}, &rep)
	if errors.Is(err, errDaemonDown) {
		return fmt.Errorf("edgegate is not running (nothing answers on %s); the daemon applies bundles", p.d.socket)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(p.stdout, rep.Message)
	for _, w := range rep.Warnings {
		fmt.Fprintln(p.stdout, "warning: "+w)
	}
	return nil
}

func (p *provisionCmd) hashPassword(iterations int) error {
	password, err := readNewPassword(p.stdin, p.stderr)
	if err != nil {
		return err
	}
	if err := admin.CheckPasswordPolicy(password); err != nil {
		return err
	}
	h, err := auth.NewHash(config.HashPBKDF2SHA256, password, iterations)
	if err != nil {
		return err
	}
	// What a gateway would refuse is not printed.
	if err := admin.CheckAdminPasswordHash(h); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "admin: "))
	}
	fmt.Fprintln(p.stdout, h)
	return nil
}
