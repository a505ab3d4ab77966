package bundle

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The tests in this file check interoperability with the real openssl CLI
// (Debian's OpenSSL 3.0, installed by scripts/install-test-deps.sh): files we
// write are read by it, and files it writes are read by us.

// opensslCLI is the openssl binary and a directory for its files.
type opensslCLI struct {
	bin string
	dir string
}

// needOpenSSL finds openssl; without it the test fails under CI=true and is
// skipped elsewhere.
func needOpenSSL(t *testing.T) *opensslCLI {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl not found (%v); scripts/install-test-deps.sh installs it", err)
		}
		t.Skipf("openssl not found (%v); run scripts/install-test-deps.sh to run the interoperability tests", err)
	}
	return &opensslCLI{bin: bin, dir: t.TempDir()}
}

// run runs openssl with args in o.dir and returns its standard output. The
// configuration is empty so that the machine's openssl.cnf cannot change the
// defaults under test.
func (o *opensslCLI) run(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), o.bin, args...)
	cmd.Dir = o.dir
	cmd.Env = append(os.Environ(), "OPENSSL_CONF="+os.DevNull)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, errors.New("openssl " + strings.Join(args, " ") + ": " + err.Error() + "\n" + stderr.String())
	}
	return stdout.Bytes(), nil
}

// must is run that fails the test on error.
func (o *opensslCLI) must(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := o.run(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// write stores data in o.dir under name and returns name.
func (o *opensslCLI) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(o.dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// read returns the file name in o.dir.
func (o *opensslCLI) read(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(o.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestOpenSSLReadsOurPKCS12(t *testing.T) {
	t.Parallel()
	needOpenSSL(t)
	f := fx(t)
	bundles := map[string]*Bundle{
		"P-256 with chain": {Chain: []*x509.Certificate{f.p256.cert, f.inter.cert, f.root.cert}, Key: f.p256.key},
		"RSA":              {Chain: []*x509.Certificate{f.rsa2048.cert, f.inter.cert}, Key: f.rsa2048.key},
		"Ed25519":          {Chain: []*x509.Certificate{f.ed25519.cert}, Key: f.ed25519.key},
		"trust-only":       {Chain: []*x509.Certificate{f.inter.cert, f.root.cert}},
	}
	for name, b := range bundles {
		for _, enc := range []Encoding{Modern, Legacy} {
			t.Run(name+"/"+enc.String(), func(t *testing.T) {
				t.Parallel()
				o := needOpenSSL(t)
				der, err := b.PKCS12("p@ss word", enc)
				if err != nil {
					t.Fatal(err)
				}
				p12 := o.write(t, "bundle.p12", der)
				// Legacy is 3DES, which OpenSSL 3 reads without -legacy.
				out := o.must(t, "pkcs12", "-in", p12, "-passin", "pass:p@ss word", "-nodes")
				got, err := ParsePEM(out, nil)
				if err != nil {
					t.Fatalf("parse openssl's output: %v\n%s", err, out)
				}
				if !sameChain(got.Chain, b.Chain) || !sameKey(got.Key, b.Key) {
					t.Errorf("openssl read %v with %T, want %v with %T", chainNames(got.Chain), got.Key, chainNames(b.Chain), b.Key)
				}
				if _, err := o.run(t, "pkcs12", "-in", p12, "-passin", "pass:wrong", "-nodes"); err == nil {
					t.Error("openssl read the file with a wrong password")
				}
			})
		}
	}
}

func TestWeReadOpenSSLPKCS12(t *testing.T) {
	t.Parallel()
	needOpenSSL(t)
	f := fx(t)
	for _, kp := range []keyPair{f.p256, f.rsa2048, f.ed25519} {
		for _, variant := range []struct {
			name string
			args []string
		}{
			{"default", nil},
			{"legacy", []string{"-legacy"}},
			{"descert", []string{"-descert"}},
			{"no MAC iteration", []string{"-nomaciter", "-noiter"}},
		} {
			t.Run(kp.cert.Subject.CommonName+"/"+variant.name, func(t *testing.T) {
				t.Parallel()
				o := needOpenSSL(t)
				// The CA certificates go in shuffled, and openssl writes them
				// in its own order: ParsePKCS12 must order them.
				o.write(t, "leaf.pem", certsPEM(kp.cert))
				o.write(t, "cas.pem", certsPEM(f.root.cert, f.inter.cert))
				o.write(t, "key.pem", pkcs8PEM(t, kp.key))
				args := append([]string{"pkcs12", "-export", "-inkey", "key.pem", "-in", "leaf.pem", "-certfile", "cas.pem", "-passout", "pass:s3cret", "-out", "out.p12"}, variant.args...)
				if _, err := o.run(t, args...); err != nil {
					if variant.name == "legacy" && strings.Contains(err.Error(), "legacy") {
						t.Skipf("openssl's legacy provider is not available: %v", err)
					}
					t.Fatal(err)
				}
				der := o.read(t, "out.p12")
				b, err := ParsePKCS12(der, "s3cret")
				if err != nil {
					t.Fatal(err)
				}
				want := []*x509.Certificate{kp.cert, f.inter.cert, f.root.cert}
				if !sameChain(b.Chain, want) || !sameKey(b.Key, kp.key) {
					t.Errorf("read %v with %T, want %v", chainNames(b.Chain), b.Key, chainNames(want))
				}
				if _, err := ParsePKCS12(der, "wrong"); !errors.Is(err, ErrBadPassword) {
					t.Errorf("wrong password: %v, want ErrBadPassword", err)
				}
			})
		}
	}

	// A certificates-only file without Java trust marks is refused, as
	// documented, with an error rather than a panic or an empty bundle.
	t.Run("nokeys", func(t *testing.T) {
		t.Parallel()
		o := needOpenSSL(t)
		o.write(t, "cas.pem", certsPEM(f.inter.cert, f.root.cert))
		o.must(t, "pkcs12", "-export", "-nokeys", "-in", "cas.pem", "-passout", "pass:s3cret", "-out", "out.p12")
		if b, err := ParsePKCS12(o.read(t, "out.p12"), "s3cret"); err == nil {
			t.Errorf("read %v from a -nokeys file", chainNames(b.Chain))
		}
	})
}

func TestOpenSSLEncryptedKeys(t *testing.T) {
	t.Parallel()
	needOpenSSL(t)
	f := fx(t)
	const password = "s3cret"
	for _, tc := range []struct {
		name string
		kp   keyPair
		// in is the unencrypted key given to openssl; args encrypt it from
		// in.pem to out.pem.
		in       []byte
		args     []string
		wantType string // the PEM type openssl must have written
		wantText string // for an encryption we refuse: the error's text
	}{
		{name: "pkcs8 -v2 aes-256-cbc EC", kp: f.p256, in: pkcs8PEM(t, f.p256.key), args: []string{"pkcs8", "-topk8", "-v2", "aes-256-cbc"}, wantType: "ENCRYPTED PRIVATE KEY"},
		{name: "pkcs8 -v2 aes-256-cbc RSA", kp: f.rsa2048, in: pkcs8PEM(t, f.rsa2048.key), args: []string{"pkcs8", "-topk8", "-v2", "aes-256-cbc"}, wantType: "ENCRYPTED PRIVATE KEY"},
		{name: "pkcs8 -v2 aes-256-cbc Ed25519", kp: f.ed25519, in: pkcs8PEM(t, f.ed25519.key), args: []string{"pkcs8", "-topk8", "-v2", "aes-256-cbc"}, wantType: "ENCRYPTED PRIVATE KEY"},
		{name: "pkcs8 -v2 aes-128-cbc hmacWithSHA1", kp: f.p384, in: pkcs8PEM(t, f.p384.key), args: []string{"pkcs8", "-topk8", "-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1"}, wantType: "ENCRYPTED PRIVATE KEY"},
		{name: "pkcs8 -v2 des3 hmacWithSHA512", kp: f.p256, in: pkcs8PEM(t, f.p256.key), args: []string{"pkcs8", "-topk8", "-v2", "des3", "-v2prf", "hmacWithSHA512"}, wantType: "ENCRYPTED PRIVATE KEY"},
		{name: "pkcs8 -iter 100000", kp: f.p256, in: pkcs8PEM(t, f.p256.key), args: []string{"pkcs8", "-topk8", "-v2", "aes-256-cbc", "-iter", "100000"}, wantType: "ENCRYPTED PRIVATE KEY"},
		{name: "ec -aes256 (legacy PEM)", kp: f.p256, in: sec1PEM(t, f.p256.key), args: []string{"ec", "-aes256"}, wantType: "EC PRIVATE KEY"},
		{name: "rsa -traditional -des3 (legacy PEM)", kp: f.rsa2048, in: pkcs8PEM(t, f.rsa2048.key), args: []string{"rsa", "-traditional", "-des3"}, wantType: "RSA PRIVATE KEY"},
		{name: "rsa -aes256 (PKCS#8 in OpenSSL 3)", kp: f.rsa2048, in: pkcs8PEM(t, f.rsa2048.key), args: []string{"rsa", "-aes256"}, wantType: "ENCRYPTED PRIVATE KEY"},
		{name: "pkcs8 -scrypt", kp: f.p256, in: pkcs8PEM(t, f.p256.key), args: []string{"pkcs8", "-topk8", "-scrypt"}, wantType: "ENCRYPTED PRIVATE KEY", wantText: "scrypt is not supported"},
		{name: "pkcs8 -v1 PBE-SHA1-3DES", kp: f.p256, in: pkcs8PEM(t, f.p256.key), args: []string{"pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES"}, wantType: "ENCRYPTED PRIVATE KEY", wantText: "PKCS#12 PBE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := needOpenSSL(t)
			o.write(t, "in.pem", tc.in)
			args := append(append([]string{}, tc.args...), "-in", "in.pem", "-passout", "pass:"+password, "-out", "out.pem")
			o.must(t, args...)
			keyPEM := o.read(t, "out.pem")
			if !bytes.HasPrefix(keyPEM, []byte("-----BEGIN "+tc.wantType+"-----\n")) {
				t.Fatalf("openssl wrote\n%s\nwant a %s block", keyPEM, tc.wantType)
			}
			checkEncryptedKey(t, cat(certsPEM(tc.kp.cert), keyPEM), password, tc.kp.cert, tc.kp.key, tc.wantText)
		})
	}

	// Keys openssl generates itself, with a certificate it makes for them.
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"genpkey EC P-384 aes-256-cbc", []string{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"}},
		{"genpkey Ed25519 aes-256-cbc", []string{"-algorithm", "ED25519"}},
		{"genpkey RSA 2048 aes-256-cbc", []string{"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := needOpenSSL(t)
			o.must(t, append(append([]string{"genpkey"}, tc.args...), "-aes-256-cbc", "-pass", "pass:"+password, "-out", "key.pem")...)
			o.must(t, "req", "-x509", "-new", "-key", "key.pem", "-passin", "pass:"+password, "-subj", "/CN=openssl-genpkey.test", "-days", "1", "-out", "cert.pem")
			input := cat(o.read(t, "key.pem"), o.read(t, "cert.pem"))
			cert, err := ParsePEM(o.read(t, "cert.pem"), nil)
			if err != nil {
				t.Fatal(err)
			}
			checkEncryptedKey(t, input, password, cert.Leaf(), nil, "")
		})
	}
}

// checkEncryptedKey parses input, a certificate and its encrypted key, with
// the right, a wrong and no password. wantKey may be nil when the key is only
// known to openssl; the leaf check then shows it matched. wantText set means
// the encryption is refused with that text, whatever the password.
func checkEncryptedKey(t *testing.T, input []byte, password string, wantLeaf *x509.Certificate, wantKey crypto.Signer, wantText string) {
	t.Helper()
	b, err := ParsePEM(input, []byte(password))
	if wantText != "" {
		if err == nil || !strings.Contains(err.Error(), wantText) {
			t.Fatalf("error %v, want one mentioning %q", err, wantText)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !b.Leaf().Equal(wantLeaf) || b.Key == nil || (wantKey != nil && !sameKey(b.Key, wantKey)) {
		t.Errorf("parsed %v with %T, want %q and its key", chainNames(b.Chain), b.Key, wantLeaf.Subject.CommonName)
	}
	if _, err := ParsePEM(input, []byte(password+"x")); !errors.Is(err, ErrBadPassword) {
		t.Errorf("wrong password: %v, want ErrBadPassword", err)
	}
	if _, err := ParsePEM(input, nil); !errors.Is(err, ErrBadPassword) {
		t.Errorf("no password: %v, want ErrBadPassword", err)
	}
}
